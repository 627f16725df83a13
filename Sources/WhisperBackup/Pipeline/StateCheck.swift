#if canImport(Glibc)
import Glibc
#endif

/// The check that keeps the state a cache of the store and never more: one listing pass over
/// the store's prefix, compared with what the state vouches for. An entry stays only while
/// its version is the metric's newest in the store, with the size recorded, and not marked
/// bad by `wsp-pull verify`; every other entry is dropped from its journal (which is compacted
/// on the way), so the file is read and stored again. Done once per run: the run's id
/// (`WSP_RUN_ID`, set by the wrappers; else the xargs that started the process) is recorded
/// once the check is done, and the other processes of the run trust it; a process with
/// neither checks on its own. On a file:// store each entry is checked as its record comes
/// instead (`ByMetric`).
public enum StateCheck {
    /// What a listing says of one metric's newest version, in 16 bytes: the version's time,
    /// whether it is sound, and a digest of its content and size. The check keeps one per
    /// metric of the store in a `NameTable` (24 bytes a metric, 24 MB for a million; names,
    /// keys and hashes as strings took about 1 KB a metric).
    struct Newest: Equatable {
        /// The version's time; bit 62 set when it is marked bad, or a delta whose chain of
        /// bases is not whole in the listing.
        private var timeAndBad: Int64
        var content: UInt64
        var time: Int64 { timeAndBad & ~Newest.badBit }
        var bad: Bool { timeAndBad & Newest.badBit != 0 }
        static let badBit: Int64 = 1 << 62

        /// The newest version stamped at or before now (`Versions.clockSlack`), as `wsp-push`
        /// compares: a version stamped in the future (a run while the clock ran ahead) is not
        /// one the state may vouch for. `sizeOf` gives the size of that version (a listing
        /// without sizes asks for the one it compares).
        init?(_ objects: MetricObjects, sizeOf: (StoredVersion) -> Int64 = { $0.size }) {
            let now = Int64(system_now())
            guard let v = objects.versions.last(where: { $0.time <= now + Versions.clockSlack }) else { return nil }
            timeAndBad = v.time | (objects.isIntact(v) ? 0 : Newest.badBit)
            content = Newest.content(hash: v.hash, size: sizeOf(v))
        }

        /// The first 8 bytes of the SHA-256 (hex) mixed with the size.
        static func content(hash: String, size: Int64) -> UInt64 {
            let prefix = UInt64(hash.prefix(16), radix: 16) ?? 0
            return prefix ^ (UInt64(bitPattern: size) &* 0x9E37_79B9_7F4A_7C15)
        }
    }

    /// Environment variable naming the current run (any unique string).
    public static let runVariable = "WSP_RUN_ID"
    /// A run's check is trusted this long at most: a run id left set in an environment for
    /// good must not turn the check off.
    public static let reuseSeconds: Double = 6 * 3600
    /// How long a process waits for another of its run to finish the check.
    public static let lockTimeout: Double = 900
    /// Metrics named one per line on stderr before the rest is only counted.
    static let namedLimit = 20

    public struct Result {
        public var kept = 0
        /// How many entries were dropped; `dropped` names the first `namedLimit` of them by
        /// name (a store emptied behind a large state's back drops every entry, and the check
        /// holds no more for that).
        public var droppedCount = 0
        public var dropped: [(metric: String, reason: String)] = []
        /// The run's check was already done by another process.
        public var reused = false

        mutating func drop(_ metric: String, _ reason: String) {
            droppedCount += 1
            dropped.append((metric, reason))
            if dropped.count > 2 * StateCheck.namedLimit { keepFirstNamed() }
        }

        /// Keeps the first `namedLimit` dropped entries by name.
        mutating func keepFirstNamed() {
            dropped.sort { $0.metric.utf8.lexicographicallyPrecedes($1.metric.utf8) }
            if dropped.count > StateCheck.namedLimit { dropped.removeSubrange(StateCheck.namedLimit...) }
        }
    }

    /// Checks `state` against `store` unless this run did already. Throws when the check
    /// could not be completed: the state must not be trusted then.
    public static func ensure(state: BackupState, store: Store, layout: StoreLayout, diagnostics: Diagnostics) throws -> Result {
        try oncePerRun(state: state) {
            let result = try check(state: state, store: store, layout: layout)
            report(result, state: state, diagnostics: diagnostics)
            return result
        }
    }

    /// Runs `pass` unless another process of this run did already, under the state's check
    /// lock (the run's other processes wait for it); records the run as done.
    static func oncePerRun(state: BackupState, _ pass: () throws -> Result) throws -> Result {
        let run = runID()
        let fd = try FileDescriptor.open(Path.join(state.dir, "check.lock"), O_RDWR | O_CREAT, mode: 0o600)
        return try fd.closeAfter {
            try FileLock.lock(fd, .exclusive, timeout: lockTimeout)
            defer { FileLock.unlock(fd) }
            let donePath = Path.join(state.dir, "checked")
            if let run, let text = try? FileDescriptor.open(donePath, O_RDONLY).closeAfterRead(),
               text == Array((run + "\n").utf8), let st = try? system_stat(donePath),
               Double(st.st_mtim.tv_sec) > system_now() - reuseSeconds {
                var r = Result()
                r.reused = true
                return r
            }
            let result = try pass()
            if let run {
                // Not recording it only costs another pass in this run.
                try? AtomicFile.write(donePath, bytes: Array((run + "\n").utf8), mode: 0o600, placement: .replace)
            }
            return result
        }
    }

    /// Temp files of a compaction, or of a check, that was killed: once per run.
    public static func removeStaleTempFiles(_ state: BackupState) {
        AtomicFile.removeStaleTempFiles(in: Path.join(state.dir, "shards"))
        AtomicFile.removeStaleTempFiles(in: state.dir)
    }

    /// The run this process is part of: `WSP_RUN_ID`, or else, when xargs started it
    /// (directly, or through `time` or `timeout`, which fork), that xargs: one xargs hands out
    /// the records of one pass of a pipeline, so its processes are one run (named by its pid
    /// and start time, and the boot: pids are reused). Nil otherwise: a process started by a
    /// shell or a script checks on its own, since two runs from one shell must not share a
    /// check.
    static func runID() -> String? {
        if let run = system_getenv(runVariable), !run.isEmpty { return run }
        func read(_ path: String) -> String? {
            (try? FileDescriptor.open(path, O_RDONLY).closeAfterRead()).map { String(decoding: $0, as: UTF8.self) }
        }
        // proc(5): after the command name in parentheses, field 3 (state) onwards; field 4
        // is the parent, field 22 the start time.
        func fields(_ pid: Int32) -> [Substring]? {
            guard let stat = read("/proc/\(pid)/stat"), let end = stat.lastIndex(of: ")") else { return nil }
            let f = stat[stat.index(after: end)...].split(separator: " ")
            return f.count > 19 ? f : nil
        }
        var pid = system_getppid()
        for _ in 0..<2 {
            guard pid > 1, let comm = read("/proc/\(pid)/comm"), let f = fields(pid) else { return nil }
            if comm == "xargs\n" {
                guard let boot = read("/proc/sys/kernel/random/boot_id") else { return nil }
                return "xargs \(pid) \(f[19]) \(boot.split(separator: "\n").first ?? "")"
            }
            guard comm == "time\n" || comm == "timeout\n", let parent = Int32(f[1]) else { return nil }
            pid = parent
        }
        return nil
    }

    /// One listing pass, then every journal compared with it (and compacted): for a store
    /// that lists ranges (S3, Swift). A store whose listing would walk every metric's
    /// directory anyway (file://) is asked metric by metric instead (`ByMetric`).
    static func check(state: BackupState, store: Store, layout: StoreLayout) throws -> Result {
        removeStaleTempFiles(state)
        var result = Result()
        func checked(_ dropped: [(metric: String, entry: StateEntry, reason: String)]) {
            for d in dropped { result.drop(d.metric, d.reason) }
        }
        // Lines written while the store is listed (concurrent pushes) record versions the
        // listing may not show: they are kept, and checked by the next run.
        let marks = try state.marks()
        var newest = NameTable<Newest>()
        try StoreListing.forEachMetric(in: store, layout: layout, prefix: layout.prefix) { objects in
            if Signals.stopRequested { throw Interrupted() }
            if let n = Newest(objects) { newest.append(objects.metric, n) }
        }
        newest.seal()
        try state.forEachShard { shard in
            if Signals.stopRequested { throw Interrupted() }
            checked(try state.compact(shard, superseded: true, mark: .some(marks[shard])) { metric, entry, judgement in
                guard var reason = problem(entry, metric: metric, newest[metric], layout: layout) else {
                    result.kept += 1
                    return nil
                }
                if judgement == .unsure {
                    // The journal was rewritten since its mark: ask the store about this metric.
                    reason = problem(entry, metric: metric, Newest(try StoreListing.metric(metric, in: store, layout: layout)), layout: layout) ?? ""
                    if reason.isEmpty {
                        result.kept += 1
                        return nil
                    }
                }
                return reason
            })
        }
        return result
    }

    /// The check on a store that is asked metric by metric (file://, whose listing reads each
    /// metric's directory anyway), made as a process's records come (`BackupState.lookup`)
    /// rather than in one pass before the run: each entry is asked about by the process that
    /// is about to skip its file, right before, so the run's processes share the work instead
    /// of waiting for one of them to check the whole state, no entry is asked twice however
    /// the records are split among processes, and a run over part of the tree checks that
    /// part only. The metric is listed after its journal was read: a line read was written
    /// after its version was stored (wsp-push stores first), so the listing shows that
    /// version, or a newer one. A dropped entry stays in its journal (no lock, no rewrite):
    /// the file's new version supersedes it, or the next run asks again.
    public final class ByMetric {
        let state: BackupState
        let store: Store
        let layout: StoreLayout
        public private(set) var result = Result()
        /// Entries that could not be asked about (the store could not be read): not trusted,
        /// so their files are read and stored again.
        var failures = 0
        var firstFailure = ""

        public init(state: BackupState, store: Store, layout: StoreLayout) {
            self.state = state
            self.store = store
            self.layout = layout
        }

        /// Whether the store holds what `entry` vouches for `metric`. The metric's objects
        /// are listed by name (a stat each would cost as many system calls as the metric has
        /// versions), and the one version compared is looked at for its size: a version gone
        /// meanwhile, or that cannot be looked at, has none, and is not vouched for.
        public func vouches(_ metric: String, _ entry: StateEntry) -> Bool {
            do {
                let objects = try StoreListing.metric(metric, in: store, layout: layout, sizes: false)
                let newest = Newest(objects) { v in v.size >= 0 ? v.size : ((try? store.head(v.key)) ?? nil)?.size ?? -1 }
                guard let reason = problem(entry, metric: metric, newest, layout: layout) else {
                    result.kept += 1
                    return true
                }
                result.drop(metric, reason)
            } catch {
                failures += 1
                if failures == 1 { firstFailure = "\(error)" }
            }
            return false
        }

        /// The dropped entries, as the one-pass check reports them, and entries not asked.
        public func report(_ diagnostics: Diagnostics) {
            StateCheck.report(result, state: state, diagnostics: diagnostics)
            if failures > 0 {
                diagnostics.warn("state \(state.dir): \(failures) entries could not be compared with the store (\(firstFailure)); their files are read and stored again")
            }
        }
    }

    /// Why the store does not hold what `entry` vouches for, or nil if it does.
    static func problem(_ entry: StateEntry, metric: String, _ n: Newest?, layout: StoreLayout) -> String? {
        // The key is made only for a message: an unchanged run asks about every entry.
        var key: String {
            layout.key(of: StoredVersion(metric: metric, time: entry.time, hash: entry.hash, key: "",
                                         base: entry.base.flatMap { VersionRef(Substring($0)) }))
        }
        guard let n else { return "the store holds no version of it (\(key) vouched for)" }
        var name: String { Path.lastComponent(key) }
        // By time, content and size: the newest may be a delta version, whose key names its
        // base too.
        if n.time != entry.time {
            return "the store's newest version is of \(Timestamp.format(n.time)), not \(name) as vouched for"
        }
        if n.content != Newest.content(hash: entry.hash, size: entry.storedSize) {
            return "the store's newest version is of that time with another content or size than \(name) (\(entry.storedSize) bytes) as vouched for"
        }
        if n.bad { return "\(name) was found damaged (wsp-pull verify), or a version it is a delta of is missing or damaged" }
        return nil
    }

    static func report(_ result: Result, state: BackupState, diagnostics: Diagnostics) {
        guard result.droppedCount > 0 else { return }
        var named = result
        named.keepFirstNamed()
        for d in named.dropped {
            diagnostics.warn("\(Diagnostics.shown(d.metric)): reading it again: \(d.reason)")
        }
        let count = result.droppedCount
        let more = count > namedLimit ? " (\(count - namedLimit) not named above)" : ""
        diagnostics.warn("state \(state.dir): \(count) file(s) the state vouched for are missing, replaced or damaged in the store\(more); they are read and stored again; \(result.kept) entries confirmed")
    }
}

extension FileDescriptor {
    /// The whole file, closing the descriptor.
    func closeAfterRead() throws -> [UInt8] { try closeAfter { try readAll() } }
}
