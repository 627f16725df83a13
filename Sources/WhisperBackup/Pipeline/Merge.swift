#if canImport(Glibc)
import Glibc
#endif

/// `wsp-merge`: for each fetched record `METRIC TIME HASH GZFILE`, verifies the version, then
/// creates a missing target atomically (temp file in the target directory, linked into place
/// only if nothing appeared meanwhile) or backfills an existing one in place under
/// `flock(LOCK_EX)`, writing only its empty slots (`WhisperFill`). Writes
/// `METRIC STATUS PATH DETAIL`; a target that is not valid whisper is left untouched and
/// reported as failed. Nothing is ever overwritten by a copy.
public struct Merge {
    public var root: String
    public var dryRun: Bool
    public var keepSpool: Bool
    /// "Now" for every record of the run (seconds since the epoch): the retention windows of
    /// the target archives are counted back from it.
    public var now: Int64
    public var lockTimeout: Double
    /// Attempts at locking a target that is replaced (renamed over) meanwhile.
    public var maxOpens = 5

    public init(root: String, dryRun: Bool, keepSpool: Bool = false, now: Int64? = nil, lockTimeout: Double = 30) {
        self.root = root
        self.dryRun = dryRun
        self.keepSpool = keepSpool
        self.now = now ?? Int64(system_now())
        self.lockTimeout = lockTimeout
    }

    public func run(input: RecordInput, output: RecordWriter, diagnostics: Diagnostics) throws {
        let realRoot: String
        do {
            if !dryRun { try Path.makeDirectories(root) }
            realRoot = try system_realpath(root)
        } catch {
            throw ConfigError("--root \(root): \(error)")
        }
        for record in input {
            if Signals.stopRequested || output.closed { break }
            do {
                let (status, path, detail) = try mergeOne(record, realRoot: realRoot, diagnostics: diagnostics)
                output.write(record.metric, status, path, detail)
                diagnostics.done(status)
            } catch {
                diagnostics.fail(record.metric, error)
                output.write(record.metric, "failed", "", Diagnostics.printable("\(error)"))
            }
        }
        try diagnostics.finish()
    }

    func mergeOne(_ record: Record, realRoot: String, diagnostics: Diagnostics) throws -> (String, String, String) {
        let metric = record.metric
        try MetricName.validate(metric)
        guard let hash = record[2] else { throw RecordError("fetched record needs HASH in field 3") }
        guard let gzPath = record[3] else { throw RecordError("fetched record needs GZFILE in field 4") }
        let target = Path.join(realRoot, MetricName.relativePath(metric))
        defer { if !keepSpool && !dryRun { _ = try? system_unlink(gzPath) } }
        let (bytes, header) = try VersionCheck.verify(gzPath: gzPath, expectedHash: hash)
        diagnostics.bytesIn += Int64(bytes.count)

        if Path.exists(target) {
            return try backfill(target, source: bytes, sourceHeader: header, realRoot: realRoot, diagnostics: diagnostics)
        }
        if dryRun { return ("would-create", target, "\(bytes.count)") }
        let dir = Path.directory(of: target)
        do {
            try Path.makeDirectories(under: realRoot, String(dir.dropFirst(realRoot.count)))
        } catch let e as Errno {
            throw RecordError(e.path ?? e.description)
        }
        do {
            try AtomicFile.write(target, placement: .createOnly) { fd in
                try bytes.withUnsafeBytes { try fd.writeAll($0) }
            }
        } catch Errno.fileExists {
            // Something (carbon) created it meanwhile: backfill it like any existing file.
            return try backfill(target, source: bytes, sourceHeader: header, realRoot: realRoot, diagnostics: diagnostics)
        }
        diagnostics.bytesOut += Int64(bytes.count)
        return ("created", target, "\(bytes.count)")
    }

    /// A directory or file under the root may be a symlink that leads elsewhere: never write there.
    func checkInsideRoot(_ path: String, realRoot: String) throws {
        let real = try system_realpath(path)
        guard real == realRoot || real.hasPrefix(realRoot + "/") else {
            throw RecordError("\(path) leads outside the root (\(real)); left untouched")
        }
    }

    /// Backfills the existing `target` from `source` in place: lock, read, plan, write the
    /// empty slots, fsync. Returns `filled N`, `unchanged 0` or, with `--dry-run`, `would-fill N`.
    func backfill(_ target: String, source: [UInt8], sourceHeader: WhisperHeader, realRoot: String,
                  diagnostics: Diagnostics) throws -> (String, String, String) {
        try checkInsideRoot(target, realRoot: realRoot)
        for _ in 0..<maxOpens {
            let fd = try FileDescriptor.open(target, dryRun ? O_RDONLY : O_RDWR)
            let result: (String, String, String)? = try fd.closeAfter {
                try FileLock.lock(fd, dryRun ? .shared : .exclusive, timeout: lockTimeout)
                defer { FileLock.unlock(fd) }
                let st = try fd.stat()
                guard st.isRegularFile else { throw RecordError("target \(target) is not a regular file; left untouched") }
                // whisper-resize replaces files by rename: lock the file the path names now.
                let current = try system_stat(target)
                if current.st_ino != st.st_ino || current.st_dev != st.st_dev { return nil }
                let bytes = try Merge.read(fd, size: Int(st.st_size))
                let plan: FillPlan
                do {
                    plan = try bytes.withUnsafeBytes { t in
                        let targetHeader = try WhisperHeader(t, fileSize: bytes.count)
                        return source.withUnsafeBytes { s in
                            WhisperFill.plan(source: s, sourceHeader: sourceHeader, target: t,
                                             targetHeader: targetHeader, now: Int(now))
                        }
                    }
                } catch let e as WhisperFormatError {
                    throw RecordError("target is not usable whisper (\(e)); left untouched")
                }
                if plan.isEmpty { return ("unchanged", target, "0") }
                if dryRun { return ("would-fill", target, "\(plan.count)") }
                let written = try Merge.write(plan, to: fd)
                diagnostics.bytesOut += Int64(written * WhisperHeader.pointSize)
                return written == 0 ? ("unchanged", target, "0") : ("filled", target, "\(written)")
            }
            if let result { return result }
        }
        throw RecordError("\(target): replaced during every one of \(maxOpens) attempts to lock it")
    }

    /// Writes `plan` into the open, locked file in two passes, then fsyncs, and returns the
    /// number of points written. The first pass writes the values only: a slot keeps its old
    /// timestamp, so it still reads as empty if the run stops there (SIGKILL, or power loss
    /// after the first fsync). The second pass writes the timestamps, which make the points
    /// visible. Each run is read again just before it is written, and a slot whose timestamp
    /// is no longer the one planned is left alone (a writer that does not lock, as carbon by
    /// default, put a point there); so is every slot of an archive whose base (first slot)
    /// moved since the plan.
    static func write(_ plan: FillPlan, to fd: FileDescriptor) throws -> Int {
        let runs = plan.runs()
        var skip = [Bool](repeating: false, count: plan.count)
        var buffer = [UInt8]()
        var written = 0
        for pass in 0..<2 {
            var checked = Set<Int>()
            var moved = Set<Int>()
            for run in runs {
                let first = plan.writes[run.lowerBound]
                if checked.insert(first.archive).inserted {
                    let baseOffset = first.offset - first.slot * WhisperHeader.pointSize
                    if try readTimestamp(fd, at: Int64(baseOffset)) != plan.bases[first.archive] {
                        moved.insert(first.archive)
                    }
                }
                if moved.contains(first.archive) {
                    for i in run { skip[i] = true }
                    continue
                }
                let count = run.count * WhisperHeader.pointSize
                if buffer.count < count { buffer = [UInt8](repeating: 0, count: count) }
                let got = try buffer.withUnsafeMutableBytes {
                    try fd.read(into: UnsafeMutableRawBufferPointer(rebasing: $0[0..<count]), at: Int64(first.offset))
                }
                guard got == count else { throw RecordError("\(fd.path): file shrank while being filled") }
                buffer.withUnsafeMutableBytes { buf in
                    for i in run {
                        let w = plan.writes[i]
                        let at = w.offset - first.offset
                        if skip[i] || WhisperPoint.timestamp(UnsafeRawBufferPointer(buf), at: at) != w.previous {
                            skip[i] = true
                        } else if pass == 0 {
                            w.point.storeValue(into: buf, at: at)
                        } else {
                            w.point.storeTimestamp(into: buf, at: at)
                            written += 1
                        }
                    }
                }
                try buffer.withUnsafeBytes {
                    try fd.write(UnsafeRawBufferPointer(rebasing: $0[0..<count]), at: Int64(first.offset))
                }
            }
            try fd.sync()
        }
        return written
    }

    /// The whole file, which must be `size` bytes long (whisper files never change size;
    /// whisper-resize replaces them by rename).
    static func read(_ fd: FileDescriptor, size: Int) throws -> [UInt8] {
        var extra: UInt8 = 0
        let bytes = try [UInt8](unsafeUninitializedCapacity: size) { buf, count in
            count = try fd.read(into: UnsafeMutableRawBufferPointer(buf), at: 0)
        }
        let more = try withUnsafeMutableBytes(of: &extra) { try fd.read(into: $0, at: Int64(size)) }
        guard bytes.count == size, more == 0 else { throw RecordError("\(fd.path): changed size while being read") }
        return bytes
    }

    static func readTimestamp(_ fd: FileDescriptor, at offset: Int64) throws -> UInt32 {
        var b = [UInt8](repeating: 0, count: 4)
        let n = try b.withUnsafeMutableBytes { try fd.read(into: $0, at: offset) }
        guard n == 4 else { throw RecordError("\(fd.path): file shrank while being filled") }
        return b.withUnsafeBytes { WhisperPoint.timestamp($0, at: 0) }
    }
}
