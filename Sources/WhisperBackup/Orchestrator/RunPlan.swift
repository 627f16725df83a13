#if canImport(Glibc)
import Glibc
#endif
import ArgumentParser

/// What a `whisper-backup` run does, decided from its settings before anything runs: the
/// mode, the store and its options, the globs, the state, and the options every stage gets.
/// A setting that makes no sense is a usage error (exit 2), nothing done.
public struct RunPlan: Sendable {
    public var settings: RunSettings
    public var mode: RunMode
    public var backend: String
    /// The store URL; nil for the noop backend.
    public var store: String?
    public var storeOptions: [String] = []
    /// wsp-push's own options.
    public var pushOptions: [String] = []
    public var globs: [String]
    public var state: String?
    public var noop: Bool
    public var retention: Int
    public var purgeDays: Int
    public var spoolMax: Int64
    public var carbonHost: String?
    public var carbonPort: Int?
    public var carbonPrefix: String
    /// The bucket directory to create (disk backend with --create-bucket).
    public var createDirectory: String?

    public init(_ s: RunSettings, env: (String) -> String? = system_getenv, hostname: String = RunPlan.hostname(),
                writable: (String) -> Bool = RunPlan.isWritableDirectory, absolute: (String) -> String = RunPlan.absolute) throws {
        settings = s
        var words = s.positional
        var mode = s.defaultMode.flatMap(RunMode.init(rawValue:))
        if let first = words.first, let m = RunMode(rawValue: first) { mode = m; words.removeFirst() }
        guard let mode else { throw ValidationError("say what to do: backup, restore, purge or list") }
        self.mode = mode
        guard let backend = words.first else {
            throw ValidationError("name a storage backend: disk, s3, gcs, swift, noop, or a store URL")
        }
        self.backend = backend
        let region = words.count > 1 ? words[1] : nil
        guard words.count <= 2 else { throw ValidationError("unexpected arguments: \(words[2...].joined(separator: " "))") }
        guard s.processes >= 1 else { throw ValidationError("--processes must be at least 1") }
        retention = s.retention ?? 5
        purgeDays = s.purge ?? 45
        guard retention >= 1 else { throw ValidationError("--retention must be at least 1") }
        guard purgeDays >= -1 else { throw ValidationError("--purge takes DAYS or -1 (disabled)") }
        guard s.locktimeout >= 0 else { throw ValidationError("--locktimeout needs a whole number of seconds, 0 or more") }
        if let l = s.level, !(1...12).contains(l) { throw ValidationError("--level \(l): not a gzip level from 1 to 12") }
        if let k = s.fullEvery, k < 1 { throw ValidationError("--full-every must be at least 1 (1: every version full)") }
        guard s.splay >= 0 else { throw ValidationError("--splay needs a whole number of seconds, 0 or more") }

        // Monitoring: where the run's figures go.
        if (s.metricsFile != nil || s.carbon != nil) && mode == .list {
            throw ValidationError("--metrics-file and --carbon report backup, restore and purge runs, not list")
        }
        if let f = s.metricsFile {
            let dir = Path.directory(of: f)
            guard writable(dir) else {
                throw ValidationError("--metrics-file \(f): directory \(dir) is missing or not writable (node_exporter's textfile directory is usually /var/lib/prometheus/node-exporter)")
            }
            guard f.hasSuffix(".prom") else { throw ValidationError("--metrics-file \(f): node_exporter reads only files named *.prom") }
        }
        if let c = s.carbon {
            guard let (host, port) = CarbonAddress.parse(c) else {
                throw ValidationError("--carbon \(c): give HOST:PORT, e.g. graphite.example.net:2003 (carbon's plaintext port)")
            }
            carbonHost = host; carbonPort = port
        }
        var cp = s.carbonPrefix ?? ""
        if cp.isEmpty {
            let h = hostname.split(separator: ".", omittingEmptySubsequences: false).first.map(String.init) ?? ""
            cp = "whisper-backup.\(h.isEmpty ? "localhost" : h)"
        }
        guard CarbonAddress.validPrefix(cp) else {
            throw ValidationError("--carbon-prefix \(cp): use letters, digits, _ - : and single dots")
        }
        if cp.hasSuffix(".") { cp.removeLast() }
        carbonPrefix = cp

        // Options that mean nothing for this mode are errors, not silently ignored.
        switch mode {
        case .backup:
            if s.date != nil { throw ValidationError("-c/--date is for restore and list") }
        case .restore, .list:
            if s.retention != nil { throw ValidationError("-r/--retention is for backup") }
            if s.purge != nil { throw ValidationError("-x/--purge is for backup and purge") }
        case .purge:
            if s.date != nil { throw ValidationError("-c/--date is for restore and list") }
            if s.retention != nil { throw ValidationError("-r/--retention is for backup") }
        }
        if let d = s.date { _ = try Timestamp.option(d, "-c/--date") }

        // The store URL and its options, from the backend. --storage-path: a directory under a
        // disk bucket; a key prefix in an object store, where a leading "/" is part of the key,
        // as the original made it (s3://b//x/ lists keys /x/...).
        var noop = s.noop
        let sp0 = s.storagePath ?? ""
        var sp = sp0.hasPrefix("/") ? String(sp0.dropFirst()) : sp0
        if !sp.isEmpty { sp = RunPlan.trimSlash(sp) + "/" }
        let osp = sp0.isEmpty ? "" : RunPlan.trimSlash(sp0) + "/"
        var endpoint = s.endpoint
        switch backend {
        case "disk", "file":
            if region != nil { throw ValidationError("a REGION makes no sense for the \(backend) backend") }
            if endpoint != nil { throw ValidationError("--endpoint makes no sense for the \(backend) backend") }
            let dir = absolute(s.bucket)
            store = "file://\(dir)/\(sp)"
            if s.createBucket && !noop { createDirectory = "\(dir)/\(sp)" }
        case "s3":
            store = "s3://\(s.bucket)/\(osp)"
            if let region { storeOptions += ["--region", region] }
        case "gcs":
            if region != nil { throw ValidationError("a REGION makes no sense for gcs (buckets carry their location)") }
            store = "s3://\(s.bucket)/\(osp)"
            if endpoint == nil { endpoint = "https://storage.googleapis.com" }
            storeOptions += ["--region", "auto"]
        case "swift":
            if region != nil { throw ValidationError("a REGION for swift comes from OS_REGION_NAME, not an argument") }
            if endpoint != nil { throw ValidationError("--endpoint makes no sense for swift (use ST_AUTH or OS_AUTH_URL)") }
            store = "swift://\(s.bucket)/\(osp)"
        case "noop":
            if region != nil { throw ValidationError("a REGION makes no sense for noop") }
            if mode != .backup { throw ValidationError("the noop backend only makes sense for backup") }
            noop = true
        default:
            guard backend.contains("://") else {
                throw ValidationError("unknown backend '\(backend)' (disk, s3, gcs, swift, noop, or a store URL)")
            }
            if region != nil { throw ValidationError("put the region in --region-less form: give the URL and set AWS_REGION") }
            if s.storagePath != nil { throw ValidationError("--storage-path: put the prefix in the store URL") }
            store = backend
        }
        if let endpoint { storeOptions += ["--endpoint", endpoint] }
        if s.createBucket { storeOptions.append("--create-bucket") }
        if let c = s.connections {
            guard (1...ConcurrentPuts.maxWidth).contains(c) else {
                throw ValidationError("--connections \(c): not a number from 1 to \(ConcurrentPuts.maxWidth)")
            }
            pushOptions = ["--connections", String(c)]
        }
        self.noop = noop
        globs = GlobList.split(s.metrics)
        _ = try MetricGlob.parseArguments(globs)
        if let st = s.state { state = st } else if let store {
            state = StateName.directory(for: store, env: env, writable: writable)
        }
        guard let bytes = ByteCount.parse(s.spoolMax), bytes > 0 else {
            throw ValidationError("--spool-max \(s.spoolMax): not a byte count: \(ByteCount.acceptedForm)")
        }
        spoolMax = bytes
    }

    static func trimSlash(_ s: String) -> String {
        var s = s
        while s.hasSuffix("/") { s.removeLast() }
        return s
    }

    /// The --dry-run option every changing stage gets with -n.
    public var dry: [String] { noop ? ["--dry-run"] : [] }

    /// -m globs as wsp-prune --metrics options: only the metrics of this run's globs are
    /// in its listing, so only those may be marked gone or purged.
    public var pruneMetrics: [String] { globs.filter { $0 != "*" }.flatMap { ["--metrics", $0] } }

    /// The options of a purge: --root (a metric whose file exists is never gone), the globs.
    public var purgeOptions: [String] {
        ["--root", settings.prefix] + (settings.force ? ["--force"] : []) + pruneMetrics
    }

    /// wsp-snap's and wsp-push's state options. A dry run neither creates nor touches a state
    /// (its per-run check against the store rewrites journals): it reads every file.
    public var stageState: [String] {
        guard let state, !noop else { return [] }
        return ["--state", state] + (settings.full ? ["--full"] : [])
    }

    /// wsp-snap's state options: the stages' and how often a version is full.
    public var snapState: [String] {
        guard !stageState.isEmpty, let k = settings.fullEvery else { return stageState }
        return stageState + ["--full-every", String(k)]
    }

    /// wsp-snap's options: its state options and the gzip level.
    public var snapOptions: [String] { snapState + (settings.level.map { ["--level", String($0)] } ?? []) }

    /// wsp-prune's (purge) state option: a purged metric leaves the state too.
    public var pruneState: [String] { state.map { ["--state", $0] } ?? [] }

    /// The id the run's processes share for one check of the state against the store.
    public static func runID() -> String {
        "\(system_getpid()).\(system_now()).\(Int.random(in: 0..<32768))"
    }

    public static func hostname() -> String {
        var buf = [CChar](repeating: 0, count: 256)
        gethostname(&buf, 255)
        return String(cString: buf)
    }

    public static func isWritableDirectory(_ path: String) -> Bool {
        guard let st = try? system_stat(path), (st.st_mode & S_IFMT) == S_IFDIR else { return false }
        return system_access(path, W_OK)
    }

    /// The absolute path, symlinks resolved where it exists (`readlink -m` for a bucket).
    public static func absolute(_ path: String) -> String {
        (try? system_realpath(path)) ?? Path.absolute(path)
    }
}
