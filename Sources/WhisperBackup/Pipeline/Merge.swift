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

    /// Records from arguments (as xargs passes them) are backfilled in batches of this many
    /// files, which share two filesystem syncs; records from stdin are made durable one by one.
    public static let batchSize = 64
    /// New files per batch (they hold no descriptor or lock while they wait).
    public static let createBatchSize = 1024
    /// Spool files given back to the spool in one update of its ledger (records from
    /// arguments), at most this many or this many bytes.
    public static let spoolReturnFiles = 64
    public static let spoolReturnBytes: Int64 = 16 << 20

    public func run(input: RecordInput, output: RecordWriter, diagnostics: Diagnostics) throws {
        defer { output.flush() }   // the records held (RecordWriter.hold)
        let realRoot: String
        // Every PATH field starts with it: checked before anything is created, and once resolved.
        func check(_ dir: String) throws {
            if let why = Record.problem(withDirectory: dir) { throw ConfigError("--root \(Diagnostics.printable(root)): \(why)") }
        }
        try check(Path.absolute(root))
        do {
            if !dryRun { try Path.makeDirectories(root) }
            // A dry run creates nothing: a root that does not exist yet would be created.
            realRoot = dryRun && !Path.exists(root) ? Path.absolute(root) : try system_realpath(root)
        } catch {
            throw ConfigError("--root \(root): \(error)")
        }
        try check(realRoot)
        let batch = MergeBatch(limit: input.isBuffered ? Merge.batchSize : 1,
                               createLimit: input.isBuffered ? Merge.createBatchSize : 1, output: output, diagnostics: diagnostics)
        // Records at hand (arguments): their spool files go back a few at a time. Records from
        // stdin: each at once, as the producer may be waiting for the room to send the next.
        let returns = SpoolReturns(files: input.isBuffered ? Merge.spoolReturnFiles : 1, bytes: Merge.spoolReturnBytes)
        defer { returns.flush() }
        diagnostics.expect(input)
        // The spool files ahead are read while this one is merged (from a file:// store on
        // the spool's filesystem they are the stored objects themselves, seldom in memory).
        let records = ReadAhead.records(input, until: output) { record in
            ((), record[3].map { ReadAhead.Item(path: $0, unless: nil) })
        }
        for (record, _) in records {
            do {
                if let (status, path, detail) = try mergeOne(record, realRoot: realRoot, batch: batch, returns: returns) {
                    batch.report(record.metric, status, path, detail)
                }
            } catch {
                batch.fail(record.metric, error)
            }
            backfillAppeared(batch, realRoot: realRoot)
        }
        repeat { batch.flush() } while backfillAppeared(batch, realRoot: realRoot)
        try diagnostics.finish()
    }

    /// Backfills the targets that appeared while their new files waited in the batch, from
    /// the new files' bytes; false when there were none.
    @discardableResult
    func backfillAppeared(_ batch: MergeBatch, realRoot: String) -> Bool {
        let appeared = batch.takeAppeared()
        for a in appeared {
            do {
                let header = try WhisperHeader(a.source)
                if let (status, path, detail) = try backfill(a.metric, a.target, source: a.source, sourceHeader: header,
                                                             realRoot: realRoot, batch: batch) {
                    batch.report(a.metric, status, path, detail)
                }
            } catch {
                batch.fail(a.metric, error)
            }
        }
        return !appeared.isEmpty
    }

    /// Merges one record; nil when its target joined the batch (reported when the batch is
    /// made durable).
    func mergeOne(_ record: Record, realRoot: String, batch: MergeBatch, returns: SpoolReturns) throws -> (String, String, String)? {
        let diagnostics = batch.diagnostics
        let metric = record.metric
        try MetricName.validate(metric)
        guard let hash = record[2] else { throw RecordError("fetched record needs HASH in field 3") }
        guard let gzPath = record[3] else { throw RecordError("fetched record needs GZFILE in field 4") }
        let target = Path.join(realRoot, MetricName.relativePath(metric))
        var size = 0
        defer { if !keepSpool && Spool.isSpoolFile(gzPath) { returns.add(gzPath, size: size) } }
        let (bytes, header) = try VersionCheck.verify(gzPath: gzPath, expectedHash: hash)
        size = bytes.count   // the content, about its gzip or more: for the bound
        diagnostics.bytesIn += Int64(bytes.count)

        if Path.exists(target) {
            return try backfill(metric, target, source: bytes, sourceHeader: header, realRoot: realRoot, batch: batch)
        }
        if dryRun { return ("would-create", target, "\(bytes.count)") }
        let dir = Path.directory(of: target)
        do {
            try Path.makeDirectories(under: realRoot, String(dir.droppingFirst(bytes: realRoot.utf8.count)))
        } catch let e as Errno {
            throw RecordError(e.path ?? e.description)
        }
        if batch.limit > 1 {
            // Batched: linked into place when the batch's data is durable (see MergeBatch).
            try bytes.withUnsafeBytes { try batch.addCreate(metric: metric, target: target, bytes: $0) }
            return nil
        }
        do {
            try AtomicFile.write(target, placement: .createOnly) { fd in
                try bytes.withUnsafeBytes { try fd.writeAllocated($0) }
            }
        } catch Errno.fileExists {
            // Something (carbon) created it meanwhile: backfill it like any existing file.
            return try backfill(metric, target, source: bytes, sourceHeader: header, realRoot: realRoot, batch: batch)
        }
        diagnostics.bytesOut += Int64(bytes.count)
        return ("created", target, "\(bytes.count)")
    }

    /// A directory or file under the root may be a symlink that leads elsewhere: never write there.
    func checkInsideRoot(_ path: String, realRoot: String) throws {
        let real = try system_realpath(path)
        guard real.sameBytes(realRoot) || real.hasPrefix(bytes: realRoot + "/") else {
            throw RecordError("\(path) leads outside the root (\(real)); left untouched")
        }
    }

    /// Backfills the existing `target` from `source` in place: lock, read, plan, and write the
    /// values of the empty slots; the batch then writes their timestamps and makes both
    /// durable. Returns `unchanged 0` or, with `--dry-run`, `would-fill N`, or nil when the
    /// target joined the batch.
    func backfill(_ metric: String, _ target: String, source: [UInt8], sourceHeader: WhisperHeader,
                  realRoot: String, batch: MergeBatch) throws -> (String, String, String)? {
        try checkInsideRoot(target, realRoot: realRoot)
        // The same file twice in one batch: the first must be finished before it is locked again.
        if batch.holds(target) { batch.flush() }
        let mode: FileLock.Mode = dryRun ? .shared : .exclusive
        for _ in 0..<maxOpens {
            let fd = try FileDescriptor.open(target, dryRun ? O_RDONLY : O_RDWR)
            var kept = false
            defer { if !kept { FileLock.unlock(fd); fd.close() } }
            // Never wait for a lock while holding others (two merges could each hold what the
            // other wants): if the file is busy, finish the batch first, then wait.
            do {
                try FileLock.lock(fd, mode, timeout: batch.isEmpty ? lockTimeout : 0)
            } catch is LockTimeout where !batch.isEmpty {
                batch.flush()
                try FileLock.lock(fd, mode, timeout: lockTimeout)
            }
            let st = try fd.stat()
            guard st.isRegularFile else { throw RecordError("target \(target) is not a regular file; left untouched") }
            // whisper-resize replaces files by rename: lock the file the path names now.
            let current = try system_stat(target)
            if current.st_ino != st.st_ino || current.st_dev != st.st_dev { continue }
            let size = Int(st.st_size)
            let plan: FillPlan
            do {
                plan = try batch.withFile(fd, size: size) { t in
                    let targetHeader = try WhisperHeader(t, fileSize: size)
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
            try batch.add(metric: metric, target: target, fd: fd, plan: plan)
            kept = true
            return nil
        }
        throw RecordError("\(target): replaced during every one of \(maxOpens) attempts to lock it")
    }
}
