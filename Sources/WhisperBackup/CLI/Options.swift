import ArgumentParser

/// How to reach a store: shared by every tool that opens one.
public struct StoreOptions: ParsableArguments {
    public init() {}

    @Option(help: ArgumentHelp("S3 endpoint URL for S3-compatible stores (default: $AWS_ENDPOINT_URL, else AWS).", valueName: "url"))
    public var endpoint: String?

    @Option(help: ArgumentHelp("S3 region (default: $AWS_REGION, $AWS_DEFAULT_REGION, the profile's region, else us-east-1).", valueName: "name"))
    public var region: String?

    @Flag(inversion: .prefixedNo, help: "S3 path-style addressing (default: path-style with --endpoint, virtual-hosted on AWS).")
    public var pathStyle: Bool?

    @Flag(help: "Do not verify TLS certificates (an explicit opt-out; verification is on by default).")
    public var insecure = false

    @Flag(name: [.customLong("create-bucket"), .customLong("create-container")],
          help: "Create the bucket, container or directory if it is missing (otherwise that is an error).")
    public var createMissing = false

    @Option(help: ArgumentHelp("Retries of a failed request (connection errors, 5xx, 429, SlowDown).", valueName: "n"))
    public var retries = 5

    public func settings(dryRun: Bool = false) -> StoreSettings {
        var s = StoreSettings()
        s.endpoint = endpoint
        s.region = region
        s.pathStyle = pathStyle
        s.insecure = insecure
        s.createMissing = createMissing
        s.retries = retries
        s.dryRun = dryRun
        return s
    }
}

/// A bounded temp directory shared by two stages.
public struct SpoolOptions: ParsableArguments {
    public init() {}

    @Option(help: ArgumentHelp("Spool directory for compressed snapshots or downloads (default: $WSP_SPOOL, else /var/tmp/wsp-spool).", valueName: "dir"))
    public var spool: String?

    @Option(help: ArgumentHelp("Most bytes the spool may hold; a stage waits while the next drains it. Suffixes K, M, G.", valueName: "bytes"))
    public var spoolMax: String = "1G"

    @Option(help: ArgumentHelp("Seconds to wait for room in a full spool before failing the record.", valueName: "s"))
    public var spoolWait: Double = 600

    public func open() throws -> Spool {
        guard let max = ByteCount.parse(spoolMax), max > 0 else {
            throw ValidationError("--spool-max \(spoolMax): not a byte count: \(ByteCount.acceptedForm)")
        }
        try Seconds.check(spoolWait, option: "--spool-wait")
        // Absolute, so GZFILE fields stay valid for a next stage in another directory.
        let dir = Path.absolute(spool ?? system_getenv("WSP_SPOOL") ?? "/var/tmp/wsp-spool")
        if let why = Record.problem(withDirectory: dir) { throw ConfigError("spool \(Diagnostics.printable(dir)): \(why)") }
        do {
            return try Spool(dir: dir, maxBytes: max, waitSeconds: spoolWait)
        } catch {
            throw ConfigError("spool \(dir): \(error)")
        }
    }
}

/// Progress and quiet switches shared by every tool.
public struct OutputOptions: ParsableArguments {
    public init() {}

    @Flag(name: .long, inversion: .prefixedNo, help: "Progress and a summary on stderr (default: when stderr is a terminal).")
    public var progress: Bool?

    @Flag(name: .shortAndLong, help: "Only errors on stderr.")
    public var quiet = false

    public func diagnostics(_ tool: String) -> Diagnostics {
        Diagnostics(tool: tool, progress: quiet ? false : progress, quiet: quiet)
    }
}

/// Byte counts with K/M/G/T suffixes (powers of 1024).
public enum ByteCount {
    /// What `parse` takes, for messages.
    public static let acceptedForm = "a number with an optional K, M, G or T suffix (powers of 1024) below 8 EiB, e.g. 512M, 2G, 1.5T"

    /// `512M`, `2G`, `1.5T`, `4096`, `2GiB`; nil for anything else, and for counts that do
    /// not fit 63 bits (never a trap, never a wrapped value).
    public static func parse(_ text: String) -> Int64? {
        var t = text.uppercased()
        if t.hasSuffix("IB") { t.removeLast(2) } else if t.hasSuffix("B") { t.removeLast() }
        var mult: Int64 = 1
        if let last = t.last, let m = ["K": Int64(1) << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40][String(last)] {
            mult = m
            t.removeLast()
        }
        // Digits with at most one '.': no sign, exponent, hex, nan or inf.
        guard !t.isEmpty, t != ".", t.utf8.allSatisfy({ ($0 >= 48 && $0 <= 57) || $0 == 46 }),
              t.utf8.filter({ $0 == 46 }).count <= 1, let v = Double(t) else { return nil }
        let bytes = v * Double(mult)
        guard bytes.isFinite, bytes >= 0, bytes < 9.2e18 else { return nil }
        return Int64(bytes)
    }
}

/// Durations given in seconds (`--lock-timeout`, `--spool-wait`).
public enum Seconds {
    /// Throws a usage error naming `option` unless `value` is finite and not negative
    /// (`nan` and `inf` parse as numbers, and would wait forever).
    public static func check(_ value: Double, option: String) throws {
        guard value.isFinite, value >= 0, value <= 1e9 else {
            throw ValidationError("\(option) \(value): not a number of seconds: 0 or more, e.g. 30 or 0.5")
        }
    }
}

extension Timestamp {
    /// The time `text` names, or a usage error naming `option` and the accepted forms.
    public static func option(_ text: String, _ option: String) throws -> Int64 {
        guard let t = Timestamp.parse(text) else {
            throw ValidationError("\(option) \(text): not a date: \(Timestamp.acceptedForms)")
        }
        return t
    }
}

extension MetricGlob {
    /// Globs given on the command line; a bad one is a usage error (exit 2) naming it.
    public static func parseArguments(_ patterns: [String]) throws -> [MetricGlob] {
        try patterns.map { p in
            do { return try MetricGlob(p) } catch { throw ValidationError("glob \(p): \(error)") }
        }
    }
}
