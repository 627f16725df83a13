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
        "spool \(dir) stayed full for \(Int(waited)) s (needs \(needed) B, --spool-max \(limit) B): is the next stage running?"
    }
}

/// A directory shared by the stages of a pipeline, bounded in bytes. A producer reserves
/// room before writing a file and waits while the consumer drains it. Usage is measured
/// from the directory itself (sizes of its files), so any number of processes can share it
/// without a counter that a crash could leave wrong.
public struct Spool: Sendable {
    public let dir: String
    public let maxBytes: Int64
    public let waitSeconds: Double

    public init(dir: String, maxBytes: Int64, waitSeconds: Double) throws {
        self.dir = dir
        self.maxBytes = maxBytes
        self.waitSeconds = waitSeconds
        try Path.makeDirectories(dir)
        removeStaleTempFiles()
    }

    /// Removes temp files and reservations left by processes that died without cleaning up
    /// (SIGKILL, power loss): their names carry the pid, and no process has it any more.
    /// Finished spool files are kept: a next stage may still take them.
    func removeStaleTempFiles() {
        guard let entries = try? system_readdir(dir) else { return }
        for e in entries where e.name.hasPrefix(AtomicFile.tempPrefix) {
            var rest = e.name.dropFirst(AtomicFile.tempPrefix.count)
            if rest.hasPrefix("resv.") { rest = rest.dropFirst(5) }
            guard let dot = rest.firstIndex(of: "."), let pid = Int32(rest[..<dot]) else { continue }
            if !system_processExists(pid) { _ = try? system_unlink(Path.join(dir, e.name)) }
        }
    }

    /// Bytes held by files in the spool now, temp files included.
    public func usage() -> Int64 {
        guard let entries = try? system_readdir(dir) else { return 0 }
        var total: Int64 = 0
        for e in entries where e.kind == .file || e.kind == .unknown {
            if let st = try? system_lstat(Path.join(dir, e.name)), st.isRegularFile {
                total += Int64(st.st_size)
            }
        }
        return total
    }

    /// Waits until `bytes` more fit under the bound, then holds them with a placeholder file
    /// of that size until `release()`. The check and the placeholder are made under a lock on
    /// the spool, so concurrent producers never overshoot together. A file larger than the
    /// whole bound can never fit and fails at once.
    public func reserve(_ bytes: Int64) throws -> SpoolReservation {
        if bytes > maxBytes { throw SpoolFull(dir: dir, needed: bytes, limit: maxBytes, waited: 0) }
        let start = system_monotonic()
        var pause = 0.005
        let lock = try FileDescriptor.open(Path.join(dir, ".wsp-spool.lock"), O_RDWR | O_CREAT, mode: 0o600)
        defer { lock.close() }
        while true {
            try FileLock.lock(lock, .exclusive, timeout: 60)
            if usage() + bytes <= maxBytes {
                defer { FileLock.unlock(lock) }
                let path = Path.join(dir, "\(AtomicFile.tempPrefix)resv.\(system_getpid()).\(UInt64.random(in: 0...UInt64.max))")
                let fd = try FileDescriptor.open(path, O_WRONLY | O_CREAT | O_EXCL, mode: 0o600)
                TempFiles.register(path)
                try fd.closeAfter { try system_ftruncate(fd.rawValue, bytes, path: path) }
                return SpoolReservation(path: path)
            }
            FileLock.unlock(lock)
            let waited = system_monotonic() - start
            if waited >= waitSeconds { throw SpoolFull(dir: dir, needed: bytes, limit: maxBytes, waited: waited) }
            if Signals.stopRequested { throw Interrupted() }
            system_sleep(pause)
            pause = min(pause * 2, 0.2)
        }
    }

    /// A new unique file name in the spool: `PID.RANDOM` and the suffix.
    public func newPath(suffix: String) -> String {
        Path.join(dir, "\(system_getpid()).\(UInt64.random(in: 0...UInt64.max))\(suffix)")
    }

    /// Whether `path` is named like a file `newPath` makes (`PID.RANDOM.wsp.gz`): the next
    /// stage removes only such files, never another file a record happens to name.
    public static func isSpoolFile(_ path: String) -> Bool {
        let name = Path.lastComponent(path)
        guard name.hasSuffix(".wsp.gz") else { return false }
        let parts = name.dropLast(7).split(separator: ".", omittingEmptySubsequences: false)
        return parts.count == 2 && parts.allSatisfy { !$0.isEmpty && $0.allSatisfy(\.isASCII) && $0.allSatisfy(\.isNumber) }
    }
}

/// The run was asked to stop (SIGINT/SIGTERM) while this record was in progress.
public struct Interrupted: Error, CustomStringConvertible {
    public init() {}
    public var description: String { "interrupted" }
}

extension Spool {
    /// Waits for room, then writes `bytes` as a new spool file (temp + rename, so the next
    /// stage never sees part of one) and returns its path. No fsync: the spool is scratch.
    public func write(_ bytes: UnsafeRawBufferPointer, suffix: String = ".wsp.gz") throws -> String {
        let reservation = try reserve(Int64(bytes.count))
        defer { reservation.release() }
        let dest = newPath(suffix: suffix)
        let tmp = AtomicFile.tempPath(for: dest)
        TempFiles.register(tmp)
        defer { _ = try? system_unlink(tmp); TempFiles.unregister(tmp) }
        let fd = try FileDescriptor.open(tmp, O_WRONLY | O_CREAT | O_EXCL, mode: 0o600)
        try fd.closeAfter { try fd.writeAll(bytes) }
        try system_rename(tmp, dest)
        return dest
    }
}

/// Room held in a spool by a placeholder file (sparse, counted by its size).
public struct SpoolReservation {
    public let path: String
    public func release() {
        _ = try? system_unlink(path)
        TempFiles.unregister(path)
    }
}
