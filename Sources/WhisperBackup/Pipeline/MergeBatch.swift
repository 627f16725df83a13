#if canImport(Glibc)
import Glibc
#endif

/// The backfills of `wsp-merge` that are written but not yet durable, and the order of their
/// writes. Each file's plan is written in two passes: first the values only (every slot keeps
/// its old timestamp, so it still reads as empty if the merge stops there, by SIGKILL or by a
/// power loss after the sync that follows), then the timestamps, which make the points
/// visible. The files of a batch stay locked from their first pass until their second is
/// durable; the batch is synced once after all first passes and once after all second
/// passes (`syncfs`, or `fsync` for a batch of one), instead of twice per file.
///
/// Each run of slots is read again just before it is written, and a slot whose timestamp is
/// no longer the one planned is left alone: a writer that does not lock (carbon, by default)
/// put a point there. So is every slot of an archive whose base (first slot) moved.
final class MergeBatch {
    struct Pending {
        var metric: String
        var target: String
        var fd: FileDescriptor
        var plan: FillPlan
        var skip: [Bool]
    }

    /// A new file written to a temp file beside its target, linked into place at the flush,
    /// once the batch's data is durable. Its descriptor is closed once written: a batch of
    /// new files holds no descriptors, so it can be far larger than one of backfills.
    struct PendingCreate {
        var metric: String
        var target: String
        var temp: String
        var size: Int
    }

    let limit: Int
    /// New files per sync: restoring small files into an empty directory costs mostly the
    /// syncs, and a sync's cost grows far slower than the data it writes. Bounded in bytes
    /// too, so a batch's dirty data stays modest.
    let createLimit: Int
    static let createBytesLimit = 256 << 20
    private var createBytes = 0
    /// Smaller new files are written back by the batch's sync alone: starting writeback file
    /// by file submits one small write each, where the sync merges neighbours.
    static let startWritebackBytes = 1 << 20
    let output: RecordWriter
    let diagnostics: Diagnostics
    private(set) var pending: [Pending] = []
    private(set) var creates: [PendingCreate] = []
    /// A target that appeared while its new file waited in the batch, with the new file's
    /// bytes (the verified backup): the merge backfills it instead.
    struct Appeared {
        var metric: String
        var target: String
        var source: [UInt8]
    }
    /// The targets that appeared at the flushes since `takeAppeared()` was last called.
    private var appeared: [Appeared] = []
    /// Reused for every target read and every run written: no allocation per file.
    private var scratch: [UInt8] = []
    private var runBuffer: [UInt8] = []

    init(limit: Int, createLimit: Int, output: RecordWriter, diagnostics: Diagnostics) {
        self.limit = max(limit, 1)
        self.createLimit = max(createLimit, 1)
        self.output = output
        self.diagnostics = diagnostics
    }

    /// New files whose data a sync on another thread is making durable while the next ones
    /// are written: a restore into an empty directory otherwise waited for each sync with
    /// nothing to do. Placed by the next sync's start or by `flush`; the sync after their
    /// placement makes their names durable.
    private(set) var syncing: (batch: [PendingCreate], sync: BackgroundSync)?

    var isEmpty: Bool { pending.isEmpty && creates.isEmpty && syncing == nil }

    func holds(_ target: String) -> Bool {
        pending.contains { $0.target == target } || creates.contains { $0.target == target }
            || syncing?.batch.contains { $0.target == target } == true
    }

    /// Writes a new file for `target` into a temp file in its directory (writeback of a large
    /// one started at once) and links it into place at the flush; flushes when the batch is
    /// full.
    func addCreate(metric: String, target: String, bytes: UnsafeRawBufferPointer) throws {
        let tmp = AtomicFile.tempPath(for: target)
        let fd = try FileDescriptor.open(tmp, O_WRONLY | O_CREAT | O_EXCL)
        TempFiles.register(tmp)
        do {
            try fd.closeAfter {
                try fd.writeAllocated(bytes)
                if bytes.count >= MergeBatch.startWritebackBytes { system_start_writeback(fd.rawValue, path: tmp) }
            }
        } catch {
            _ = try? system_unlink(tmp)
            TempFiles.unregister(tmp)
            throw error
        }
        creates.append(PendingCreate(metric: metric, target: target, temp: tmp, size: bytes.count))
        createBytes += bytes.count
        if pending.count >= limit {
            flush()
        } else if creates.count >= createLimit || createBytes >= MergeBatch.createBytesLimit {
            if pending.isEmpty && createLimit > 1 { syncCreatesInBackground() } else { flush() }
        }
    }

    /// Starts the sync of the new files written so far on another thread and takes them out
    /// of the batch, after placing those of the sync before (that sync's return makes their
    /// data durable, and this one their names).
    private func syncCreatesInBackground() {
        placeSynced()
        guard let sync = try? BackgroundSync(path: creates[0].temp) else {
            keepAppeared(flushCreates())   // no thread to be had: synced here, as before
            return
        }
        syncing = (creates, sync)
        creates.removeAll()
        createBytes = 0
    }

    /// Waits for the sync on another thread, then places its new files.
    private func placeSynced() {
        guard let (batch, sync) = syncing else { return }
        syncing = nil
        keepAppeared(place(batch, syncError: sync.wait()))
    }

    /// Links every pending new file into place once the batch's data is durable. A target
    /// that appeared meanwhile is backfilled instead, never replaced.
    private func flushCreates() -> [PendingCreate] {
        guard !creates.isEmpty else { return [] }
        let batch = creates
        creates.removeAll()
        createBytes = 0
        var syncError: Error?
        do {
            let fd = try FileDescriptor.open(batch[0].temp, O_RDONLY)
            try fd.closeAfter {
                if batch.count == 1 { try fd.sync() } else { try system_syncfs(fd.rawValue, path: batch[0].temp) }
            }
        } catch {
            syncError = error
        }
        return place(batch, syncError: syncError)
    }

    /// Links the new files of `batch` into place, or fails them all when the sync that was
    /// to make their data durable failed; returns those whose target appeared meanwhile.
    private func place(_ batch: [PendingCreate], syncError: Error?) -> [PendingCreate] {
        func discard(_ c: PendingCreate) {
            _ = try? system_unlink(c.temp)
            TempFiles.unregister(c.temp)
        }
        if let syncError {
            for c in batch {
                fail(c.metric, syncError)
                discard(c)
            }
            return []
        }
        var appeared: [PendingCreate] = []
        for c in batch {
            do {
                try MergeBatch.placeWithoutReplacing(c.temp, c.target)
                TempFiles.unregister(c.temp)
                diagnostics.bytesOut += Int64(c.size)
                report(c.metric, "created", c.target, "\(c.size)")
            } catch Errno.fileExists {
                appeared.append(c)   // its temp file is read by keepAppeared
            } catch {
                fail(c.metric, error)
                discard(c)
            }
        }
        return appeared
    }

    /// Whether this filesystem renamed without replacing; false once it refused (NFS).
    static var renamesWithoutReplacing = true

    /// Moves the written file `temp` to `target` unless `target` exists (EEXIST, `temp` kept):
    /// renamed in one step where the filesystem can, else linked and `temp` removed.
    static func placeWithoutReplacing(_ temp: String, _ target: String) throws {
        if renamesWithoutReplacing {
            do {
                return try system_renameNoReplace(temp, target)
            } catch let e as Errno where e == .invalidArgument || e == .notSupported || e == .noSys {
                renamesWithoutReplacing = false
            }
        }
        try system_link(temp, target)
        _ = try? system_unlink(temp)
    }

    func report(_ metric: String, _ status: String, _ path: String, _ detail: String) {
        output.hold(metric, status, path, detail)
        diagnostics.done(status)
    }

    func fail(_ metric: String, _ error: Any) {
        diagnostics.fail(metric, error)
        // Shown escaped and shortened: a bad name (a newline in it) must not break the record stream.
        output.hold(Diagnostics.shown(metric), "failed", "", Diagnostics.printable("\(error)"))
    }

    /// Runs `body` on the whole file (`size` bytes, read into a reused buffer).
    func withFile<R>(_ fd: FileDescriptor, size: Int, _ body: (UnsafeRawBufferPointer) throws -> R) throws -> R {
        if scratch.count < size + 1 { scratch = [UInt8](repeating: 0, count: size + 1) }
        return try scratch.withUnsafeMutableBytes { buf in
            // One byte more than the size confirms the end: whisper files never change size.
            let n = try fd.read(into: UnsafeMutableRawBufferPointer(rebasing: buf[0..<(size + 1)]), at: 0)
            guard n == size else { throw RecordError("\(fd.path): changed size while being read") }
            return try body(UnsafeRawBufferPointer(rebasing: buf[0..<size]))
        }
    }

    /// Writes the values of `plan` into the open, locked `fd` and keeps the file (lock and
    /// descriptor) until the batch is flushed; flushes when the batch is full.
    func add(metric: String, target: String, fd: FileDescriptor, plan: FillPlan) throws {
        var skip = [Bool](repeating: false, count: plan.count)
        _ = try MergeBatch.pass(0, plan, fd, &skip, &runBuffer)
        pending.append(Pending(metric: metric, target: target, fd: fd, plan: plan, skip: skip))
        if pending.count >= limit { flush() }
    }

    /// The targets that appeared at the flushes so far (each handed out once).
    func takeAppeared() -> [Appeared] {
        defer { appeared.removeAll() }
        return appeared
    }

    /// Makes the values durable, writes the timestamps, makes them durable, unlocks and
    /// reports every pending file. New files whose target appeared meanwhile are kept for
    /// `takeAppeared()`.
    func flush() {
        let linkedDir = (creates.first ?? syncing?.batch.first).map { Path.directory(of: $0.target) }
        placeSynced()
        keepAppeared(flushCreates())
        if pending.isEmpty {
            // The links' directory entries: one more sync when no backfill follows to do it.
            if let linkedDir { syncLinks(linkedDir) }
            return
        }
        var results = [Result<Int, Error>](repeating: .success(0), count: pending.count)
        do {
            try sync()
            for i in pending.indices {
                results[i] = Result { try MergeBatch.pass(1, pending[i].plan, pending[i].fd, &pending[i].skip, &runBuffer) }
            }
            try sync()
        } catch {
            for i in results.indices { if case .success = results[i] { results[i] = .failure(error) } }
        }
        for (p, result) in zip(pending, results) {
            FileLock.unlock(p.fd)
            p.fd.close()
            switch result {
            case .success(let written):
                diagnostics.bytesOut += Int64(written * WhisperHeader.pointSize)
                report(p.metric, written == 0 ? "unchanged" : "filled", p.target, "\(written)")
            case .failure(let error):
                fail(p.metric, error)
            }
        }
        pending.removeAll()
    }

    private func syncLinks(_ dir: String) {
        do {
            let fd = try FileDescriptor.open(dir, O_RDONLY | O_DIRECTORY)
            try fd.closeAfter { try system_syncfs(fd.rawValue, path: dir) }
        } catch {
            diagnostics.warn("\(dir): sync after linking new files: \(error)")
        }
    }

    private func keepAppeared(_ created: [PendingCreate]) {
        for c in created {
            defer {
                _ = try? system_unlink(c.temp)
                TempFiles.unregister(c.temp)
            }
            do {
                let src = try FileDescriptor.open(c.temp, O_RDONLY)
                let bytes = try src.closeAfter { try src.readAll(sizeHint: c.size) }
                appeared.append(Appeared(metric: c.metric, target: c.target, source: bytes))
            } catch {
                fail(c.metric, error)
            }
        }
    }

    private func sync() throws {
        if pending.count == 1 {
            try pending[0].fd.sync()
        } else {
            try system_syncfs(pending[0].fd.rawValue, path: pending[0].target)
        }
    }

    /// One pass over `plan`: 0 writes the values, 1 the timestamps. Returns the number of
    /// points the second pass made visible.
    static func pass(_ pass: Int, _ plan: FillPlan, _ fd: FileDescriptor, _ skip: inout [Bool],
                     _ buffer: inout [UInt8]) throws -> Int {
        var written = 0
        var checkedArchive = -1
        var moved = false
        for run in plan.runs() {
            let first = plan.writes[run.lowerBound]
            if first.archive != checkedArchive {
                checkedArchive = first.archive
                let baseOffset = first.offset - first.slot * WhisperHeader.pointSize
                moved = try readTimestamp(fd, at: Int64(baseOffset)) != plan.bases[first.archive]
            }
            if moved {
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
        return written
    }

    /// Writes `plan` into one open, locked file on its own: values, fsync, timestamps, fsync.
    static func write(_ plan: FillPlan, to fd: FileDescriptor) throws -> Int {
        var skip = [Bool](repeating: false, count: plan.count)
        var buffer = [UInt8]()
        _ = try pass(0, plan, fd, &skip, &buffer)
        try fd.sync()
        let written = try pass(1, plan, fd, &skip, &buffer)
        try fd.sync()
        return written
    }

    static func readTimestamp(_ fd: FileDescriptor, at offset: Int64) throws -> UInt32 {
        var b: UInt32 = 0
        let n = try withUnsafeMutableBytes(of: &b) { try fd.read(into: $0, at: offset) }
        guard n == 4 else { throw RecordError("\(fd.path): file shrank while being filled") }
        return UInt32(bigEndian: b)
    }
}
