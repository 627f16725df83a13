#if canImport(Glibc)
import Glibc
#endif

/// A spool full for longer than the caller would wait.
public struct SpoolFull: Error, CustomStringConvertible {
    public var dir: String
    public var needed: Int64
    public var limit: Int64
    public var waited: Double
    public var description: String {
        if needed > limit {
            return "its spool file (\(needed) B) is larger than --spool-max (\(limit) B): raise --spool-max"
        }
        return stalled
            ? "spool \(dir) stayed full for --spool-wait already and nothing drained it since: is the next stage running?"
            : "spool \(dir) stayed full for \(Int(waited)) s (needs \(needed) B, --spool-max \(limit) B): is the next stage running?"
    }
    /// The spool was already marked stalled: this reservation did not wait.
    public var stalled = false
    /// Whether waiting longer cannot help (the spool stalled), so the stage should stop
    /// rather than fail each of its remaining records after the same wait.
    public var stopsTheStage: Bool { waited > 0 || stalled }
}

/// A directory shared by the stages of a pipeline, bounded in bytes. A producer reserves
/// room before writing a file and waits while the consumer drains it.
///
/// The accounting lives in a small ledger, `.wsp-spool.lock`, read and rewritten under an
/// exclusive lock on it: the bytes of finished spool files, one line per reservation in
/// flight (with its process id, so a dead process's reservation lapses), and the number of
/// emptied files kept for reuse. Scanning the directory for every reservation made a run
/// over n files cost n² stat calls; the directory is now measured when the ledger says the
/// spool is full, when it cannot be read, at each process's first reservation and every few
/// seconds: a ledger left wrong by a crash, or files put there by others, cost a scan, never
/// a stall or more than a few seconds' overshoot.
///
/// Consumers rename a finished file to `.wsp-free.N` rather than unlink it, and producers
/// write into such a file: a run then creates and frees no inodes in the spool, which on
/// filesystems that delay the reuse of freed inodes (ext4 without a journal) made every new
/// file slower than the last. A free file of at most `keepBlocksBytes` keeps its blocks too
/// (the next file is written over them and cut to length): freeing and allocating them again
/// for every small file cost more than the rest of the spool's work on a filesystem mounted
/// with `discard`. Larger ones are emptied. So emptied files hold at most `maxFree` x
/// `keepBlocksBytes` (256 MiB) of disk beyond the bound.
///
/// A producer writes a file under its final name, `PID.TOKEN.wsp.gz` (the reservation's
/// token): no stage takes a file before a record names it, and a record is written only once
/// the file is complete, so a temp name and a rename per file bought nothing. The file of a
/// reservation whose process is gone (killed mid-write) is removed with the reservation.
///
/// A producer that waited `waitSeconds` in vain marks the ledger stalled: until the spool
/// drains (a reservation is granted or a file discarded), every other reservation that does
/// not fit fails at once, so a stalled pipeline fails once after the wait, not once per record.
public struct Spool: Sendable {
    public let dir: String
    public let maxBytes: Int64
    public let waitSeconds: Double

    static let ledgerName = ".wsp-spool.lock"
    static let freePrefix = ".wsp-free."
    /// Emptied files kept for reuse at most; more are unlinked.
    static let maxFree = 4096
    /// Free files up to this size keep their blocks (see above).
    static let keepBlocksBytes: Int64 = 64 << 10
    /// Seconds between scans of the directory while the ledger says there is room.
    static let scanInterval: Int64 = 5
    /// Whether this process has scanned the spool (single-threaded tools).
    static var scannedHere = false
    /// The ledgers this process has opened, by path.
    static var openLedgers: [String: FileDescriptor] = [:]

    public init(dir: String, maxBytes: Int64, waitSeconds: Double) throws {
        self.dir = dir
        self.maxBytes = maxBytes
        self.waitSeconds = waitSeconds
        try Path.makeDirectories(dir)
        removeStaleTempFiles()
    }

    /// Removes temp files left by processes that died without cleaning up (SIGKILL, power
    /// loss): their names carry the pid, and no process has it any more. Finished spool files
    /// are kept: a next stage may still take them.
    func removeStaleTempFiles() {
        AtomicFile.removeStaleTempFiles(in: dir)   // reservations of earlier versions: `resv.PID.`
    }

    /// Bytes held by finished files in the spool now (a directory scan). Files being written
    /// (those of `reservations`) are counted by their reservations instead; emptied files
    /// hold nothing.
    public func usage() -> Int64 { usage(reservations: []) }

    func usage(reservations: [SpoolLedger.Reservation]) -> Int64 {
        guard let entries = try? system_readdir(dir) else { return 0 }
        let writing = Set(reservations.map { Spool.fileName(pid: $0.pid, token: $0.token) })
        var total: Int64 = 0
        for e in entries where (e.kind == .file || e.kind == .unknown) && !e.name.hasPrefix(bytes: Spool.freePrefix)
            && !e.name.hasPrefix(bytes: AtomicFile.tempPrefix) && e.name != Spool.ledgerName && !writing.contains(e.name) {
            if let st = try? system_lstat(Path.join(dir, e.name)), st.isRegularFile {
                total += Int64(st.st_size)
            }
        }
        return total
    }

    /// Waits until `bytes` more fit under the bound, then holds them in the ledger until the
    /// reservation is committed or cancelled. The reservation's `path` is where to write the
    /// file (an emptied spool file when there is one). A file larger than the whole bound can
    /// never fit and fails at once.
    func reserve(_ bytes: Int64) throws -> SpoolReservation {
        if bytes > maxBytes { throw SpoolFull(dir: dir, needed: bytes, limit: maxBytes, waited: 0) }
        let start = system_monotonic()
        var pause = 0.005
        while true {
            let granted: SpoolReservation? = try withLedger { ledger in
                // Files the ledger does not know of (another tool's, copied in by hand) are
                // found by a scan at each process's first reservation and every few seconds.
                let now = Int64(system_now())
                if ledger.used + bytes > maxBytes || !Spool.scannedHere || now - ledger.scanned >= Spool.scanInterval {
                    ledger.spooled = usage(reservations: ledger.reservations)
                    ledger.scanned = now
                    Spool.scannedHere = true
                }
                let used = ledger.used
                guard used + bytes <= maxBytes else {
                    if ledger.stalled { throw SpoolFull(dir: dir, needed: bytes, limit: maxBytes, waited: 0, stalled: true) }
                    return nil
                }
                ledger.stalled = false
                let token = UInt64.random(in: 0...UInt64.max)
                let path = filePath(pid: system_getpid(), token: token)
                TempFiles.register(path)
                var fresh = true
                if ledger.free > 0 {
                    ledger.free -= 1
                    fresh = (try? system_rename(Path.join(dir, "\(Spool.freePrefix)\(ledger.free)"), path)) == nil
                }
                ledger.reservations.append(.init(pid: system_getpid(), token: token, bytes: bytes))
                return SpoolReservation(token: token, path: path, fresh: fresh)
            }
            if let granted { return granted }
            let waited = system_monotonic() - start
            if waited >= waitSeconds {
                _ = try? withLedger { $0.stalled = true }
                throw SpoolFull(dir: dir, needed: bytes, limit: maxBytes, waited: waited)
            }
            if Signals.stopRequested { throw Interrupted() }
            Waiting.willWait()
            system_sleep(pause)
            pause = min(pause * 2, 0.2)
        }
    }

    /// Books a reservation's written file at its size in place of the reservation: a record
    /// may name it from then on.
    private func commit(_ r: SpoolReservation) throws {
        let size = Int64(try system_stat(r.path).st_size)
        TempFiles.unregister(r.path)
        try withLedger { ledger in
            ledger.reservations.removeAll { $0.pid == system_getpid() && $0.token == r.token }
            ledger.spooled += size
        }
    }

    /// Gives up a reservation; whatever was written to its path is emptied and kept for reuse.
    func cancel(_ r: SpoolReservation) {
        _ = try? withLedger { ledger in
            ledger.reservations.removeAll { $0.pid == system_getpid() && $0.token == r.token }
            recycle(r.path, try? system_lstat(r.path), size: nil, &ledger)
        }
        TempFiles.unregister(r.path)
    }

    /// Empties a spool file a stage has finished with and keeps it for reuse (or unlinks it
    /// when the directory holds no ledger, or enough emptied files already).
    public static func discard(_ path: String) { discard([path]) }

    /// `discard` for several files, with one update of each spool's ledger.
    public static func discard(_ paths: [String]) { discard(paths.map { ($0, nil) }) }

    /// `discard` for files whose sizes the caller knows: also for files that have left the
    /// spool (a store moved them in, `StoreBody.spoolFile`), whose room the ledger frees all
    /// the same.
    public static func discard(_ paths: [(path: String, size: Int64?)]) {
        var byDir: [String: [(path: String, size: Int64?)]] = [:]
        for p in paths { byDir[Path.directory(of: p.path), default: []].append(p) }
        for (dir, known) in byDir {
            let spool = Spool(existing: dir)
            let files = known.map(\.path)
            guard Path.exists(Path.join(dir, ledgerName)) else {
                for f in files { _ = try? system_unlink(f) }
                continue
            }
            let stats = files.map { try? system_lstat($0) }
            let sizes = zip(known, stats).map { k, st in k.size ?? Int64(st?.st_size ?? 0) }
            let done: Void? = try? spool.withLedger { ledger in
                ledger.stalled = false
                for ((f, st), size) in zip(zip(files, stats), sizes) {
                    spool.recycle(f, st, size: size, &ledger)
                    ledger.spooled = max(0, ledger.spooled - size)
                }
            }
            if done == nil { for f in files { _ = try? system_unlink(f) } }
        }
    }

    /// A spool opened by a consumer: no bound, no cleanup.
    private init(existing dir: String) {
        self.dir = dir
        maxBytes = .max
        waitSeconds = 0
    }

    /// Under the ledger's lock: renames `path` (`st`: its lstat) into the free pool, emptied
    /// unless it is small (`size`, when the caller knows it). A file with another name (a
    /// stored object linked in, `Store.link`) is only unlinked: emptied or reused, it would
    /// change the object.
    private func recycle(_ path: String, _ st: stat?, size: Int64?, _ ledger: inout SpoolLedger) {
        guard let st else { return }   // gone: moved into a store
        let keep = (size ?? Int64.max) <= Spool.keepBlocksBytes
        guard st.isRegularFile, st.st_nlink == 1, ledger.free < Spool.maxFree, keep || (try? system_truncate(path, 0)) != nil,
              (try? system_rename(path, Path.join(dir, "\(Spool.freePrefix)\(ledger.free)"))) != nil else {
            _ = try? system_unlink(path)
            return
        }
        ledger.free += 1
    }

    /// Runs `body` on the ledger under an exclusive lock and writes it back. A ledger that is
    /// missing or unreadable starts from a scan of the directory.
    @discardableResult
    func withLedger<R>(_ body: (inout SpoolLedger) throws -> R) throws -> R {
        let path = Path.join(dir, Spool.ledgerName)
        // Kept open for the process's life: a run updates the ledger a few times per file.
        let fd: FileDescriptor
        if let open = Spool.openLedgers[path] {
            fd = open
        } else {
            fd = try FileDescriptor.open(path, O_RDWR | O_CREAT, mode: 0o600)
            Spool.openLedgers[path] = fd
        }
        try FileLock.lockBriefly(fd, .exclusive)
        defer { FileLock.unlock(fd) }
        // A few lines: one read, where a read short of the buffer is the whole file; and cut
        // only when shorter than it was (a run updates the ledger a few times per file).
        var text = [UInt8](repeating: 0, count: 4096)
        let n = (try? text.withUnsafeMutableBytes { try system_pread(fd.rawValue, $0.baseAddress!, $0.count, 0, path: path) }) ?? 0
        text = n < text.count ? Array(text[..<n]) : (try? fd.readAll()) ?? []
        let parsed = SpoolLedger(parsing: text)
        var ledger = parsed ?? SpoolLedger(spooled: usage())
        var lapsed: [SpoolLedger.Reservation] = []
        ledger.reservations.removeAll { r in
            if system_processExists(r.pid) { return false }
            lapsed.append(r)
            return true
        }
        for r in lapsed { _ = try? system_unlink(filePath(pid: r.pid, token: r.token)) }   // never committed: no record names it
        let result = try body(&ledger)
        var out = Array(ledger.text.utf8)
        // A shorter text is padded with empty lines (which a reading ignores) to the length
        // the file has, rather than the file cut: a truncate on every booking of a spool
        // file cost 2% of wsp-snap's time. A damaged or long file is cut.
        if parsed != nil && out.count < text.count && text.count < SpoolLedger.padBelow {
            out += repeatElement(UInt8(ascii: "\n"), count: text.count - out.count)
        }
        try out.withUnsafeBytes { try fd.write($0, at: 0) }
        if parsed == nil || out.count < text.count { try system_ftruncate(fd.rawValue, Int64(out.count), path: path) }
        return result
    }

    /// The file of a reservation: `PID.TOKEN.wsp.gz`.
    func filePath(pid: Int32, token: UInt64) -> String {
        Path.join(dir, Spool.fileName(pid: pid, token: token))
    }

    static func fileName(pid: Int32, token: UInt64) -> String { "\(pid).\(token).wsp.gz" }

    /// Whether `path` is named like a spool file (`PID.TOKEN.wsp.gz`): the next
    /// stage removes only such files, never another file a record happens to name.
    public static func isSpoolFile(_ path: String) -> Bool {
        let name = Path.lastComponent(path)
        guard name.hasSuffix(bytes: ".wsp.gz") else { return false }
        let parts = name.droppingLast(bytes: 7).split(byte: UInt8(ascii: "."))
        return parts.count == 2 && parts.allSatisfy { !$0.isEmpty && $0.utf8.allSatisfy { (UInt8(ascii: "0")...UInt8(ascii: "9")).contains($0) } }
    }
}

/// The spool's accounting (see `Spool`), as text:
///
///     wsp-spool 1
///     spooled BYTES
///     scanned EPOCH-SECONDS     (the last directory scan)
///     free COUNT
///     stalled                   (a producer waited --spool-wait in vain; see `Spool`)
///     resv PID TOKEN BYTES      (one per reservation in flight)
struct SpoolLedger {
    struct Reservation {
        var pid: Int32
        var token: UInt64
        var bytes: Int64
    }
    var spooled: Int64
    var scanned: Int64 = 0
    var free = 0
    var stalled = false
    var reservations: [Reservation] = []

    init(spooled: Int64) { self.spooled = spooled }

    /// Parsed as bytes: the ledger is read a few times per spool file, and parsing it as a
    /// String cost 3% of wsp-snap's time.
    init?(parsing bytes: [UInt8]) {
        let lines = bytes.split(separator: UInt8(ascii: "\n"))
        guard let first = lines.first, first.elementsEqual("wsp-spool 1".utf8) else { return nil }
        var spooled: Int64?
        for line in lines.dropFirst() {
            let f = line.split(separator: UInt8(ascii: " "))
            guard let key = f.first else { return nil }
            switch (String(decoding: key, as: UTF8.self), f.count) {
            case ("spooled", 2): spooled = SpoolLedger.number(f[1])
            case ("scanned", 2): guard let t = SpoolLedger.number(f[1]) else { return nil }; scanned = t
            case ("free", 2): guard let n = SpoolLedger.number(f[1]), n >= 0 else { return nil }; free = Int(n)
            case ("stalled", 1): stalled = true
            case ("resv", 4):
                guard let pid = SpoolLedger.number(f[1]).flatMap(Int32.init(exactly:)), let token = UInt64(String(decoding: f[2], as: UTF8.self)),
                      let b = SpoolLedger.number(f[3]) else { return nil }
                reservations.append(Reservation(pid: pid, token: token, bytes: b))
            default: return nil
            }
        }
        guard let spooled, spooled >= 0 else { return nil }
        self.spooled = spooled
    }

    /// A decimal of at most 18 digits, `-` allowed in front.
    static func number(_ s: ArraySlice<UInt8>) -> Int64? {
        let negative = s.first == UInt8(ascii: "-")
        let digits = negative ? s.dropFirst() : s
        guard !digits.isEmpty, digits.count <= 18 else { return nil }
        var n: Int64 = 0
        for c in digits {
            guard c >= UInt8(ascii: "0"), c <= UInt8(ascii: "9") else { return nil }
            n = n * 10 + Int64(c - UInt8(ascii: "0"))
        }
        return negative ? -n : n
    }

    /// A ledger file shorter than this is padded, not cut (`Spool.withLedger`).
    static let padBelow = 4096

    var used: Int64 { spooled + reservations.reduce(0) { $0 + $1.bytes } }

    var text: String {
        var s = "wsp-spool 1\nspooled \(spooled)\nscanned \(scanned)\nfree \(free)\n"
        if stalled { s += "stalled\n" }
        for r in reservations { s += "resv \(r.pid) \(r.token) \(r.bytes)\n" }
        return s
    }
}

/// The run was asked to stop (SIGINT/SIGTERM) while this record was in progress.
public struct Interrupted: Error, CustomStringConvertible {
    public init() {}
    public var description: String { "interrupted" }
}

extension Spool {
    /// Waits for room for `bytes`, has `fill` write the file at the path it is given, and
    /// books it as a new spool file, whose path it returns. The path may hold an earlier
    /// file's bytes: `fill` replaces the whole content (O_TRUNC, or
    /// `FileDescriptor.overwrite`). If anything fails, the room and the file go back to the
    /// spool. No fsync: the spool is scratch.
    public func add(reserving bytes: Int64, _ fill: (String) throws -> Void) throws -> String {
        try addFile(reserving: bytes) { try fill($0.path) }
    }

    private func addFile(reserving bytes: Int64, _ fill: (SpoolReservation) throws -> Void) throws -> String {
        let r = try reserve(bytes)
        do {
            try fill(r)
            try commit(r)
        } catch {
            cancel(r)
            throw error
        }
        return r.path
    }

    /// `add` for bytes in memory. A new file is written and no more; only a reused one is
    /// cut to length (a truncate per file cost 2% of wsp-snap's time).
    public func write(_ bytes: UnsafeRawBufferPointer) throws -> String {
        try addFile(reserving: Int64(bytes.count)) { r in
            let fd = try FileDescriptor.open(r.path, O_WRONLY | O_CREAT | (r.fresh ? O_EXCL : 0), mode: 0o600)
            try fd.closeAfter { r.fresh ? try fd.write(bytes, at: 0) : try fd.overwrite(with: bytes) }
        }
    }
}

/// Room held in a spool's ledger, and the path to write the file to.
struct SpoolReservation {
    let token: UInt64
    let path: String
    /// No file is at `path` yet (none was free for reuse).
    let fresh: Bool
}

/// Spool files a consumer is done with, given back a few at a time: one update of the
/// spool's ledger for up to `files` files or `bytes` bytes instead of one per file (a lock,
/// two reads, a write and a truncate of the ledger for each restored file). What is pending
/// goes back before the consumer waits (`Waiting`: a producer may be waiting for that room)
/// and at the end (`flush`).
public final class SpoolReturns: @unchecked Sendable {
    let maxFiles: Int
    let maxBytes: Int64
    private var files: [String] = []
    private var bytes: Int64 = 0

    public init(files: Int, bytes: Int64) {
        maxFiles = max(1, files)
        maxBytes = bytes
        if maxFiles > 1 { Waiting.register { [weak self] in self?.flush() } }
    }

    /// `size`: about the file's size, for the bound.
    public func add(_ path: String, size: Int) {
        files.append(path)
        bytes += Int64(size)
        if files.count >= maxFiles || bytes >= maxBytes { flush() }
    }

    public func flush() {
        if files.isEmpty { return }
        Spool.discard(files)
        files.removeAll(keepingCapacity: true)
        bytes = 0
    }
}
