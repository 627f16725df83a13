#if canImport(Glibc)
import Glibc
#endif

/// Errors of waiting for a lock.
public struct LockTimeout: Error, CustomStringConvertible {
    public var path: String
    public var seconds: Double
    public var description: String { "\(path): lock not granted within \(seconds) s" }
}

/// `flock(2)` locks with a timeout: polls a non-blocking request, backing off to 50 ms.
/// flock has no timeout of its own, and a blocked call cannot be abandoned. A SIGINT/SIGTERM
/// ends the wait with `Interrupted`.
public enum FileLock {
    public enum Mode { case shared, exclusive }

    public static func lock(_ fd: FileDescriptor, _ mode: Mode, timeout: Double) throws {
        let op: CInt = (mode == .shared ? LOCK_SH : LOCK_EX) | LOCK_NB
        let deadline = system_monotonic() + timeout
        var pause = 0.001
        while true {
            do {
                try system_flock(fd.rawValue, op, path: fd.path)
                return
            } catch Errno.wouldBlock {
                if system_monotonic() >= deadline { throw LockTimeout(path: fd.path, seconds: timeout) }
                if Signals.stopRequested { throw Interrupted() }
                Waiting.willWait()
                system_sleep(pause)
                pause = min(pause * 2, 0.05)
            }
        }
    }

    /// Waits in the kernel, without a timeout: only for locks every holder keeps for
    /// microseconds and for local work alone (the spool's ledger). Polling those made
    /// processes taking turns sleep far longer than the lock was ever held.
    public static func lockBriefly(_ fd: FileDescriptor, _ mode: Mode) throws {
        try system_flock(fd.rawValue, mode == .shared ? LOCK_SH : LOCK_EX, path: fd.path)
    }

    public static func unlock(_ fd: FileDescriptor) {
        _ = try? system_flock(fd.rawValue, LOCK_UN, path: fd.path)
    }
}

extension FileLock {
    /// Appends `bytes` with one `write(2)` to the file `fd` has open with O_APPEND, under a
    /// shared lock: appenders never interleave inside a record, and a compaction, which
    /// replaces the file by a rename under an exclusive lock, loses none. False, writing
    /// nothing, when `fd.path` names another file by then (a compaction replaced it): the
    /// caller opens the path again.
    public static func appendIfCurrent(_ bytes: [UInt8], to fd: FileDescriptor) throws -> Bool {
        try lockBriefly(fd, .shared)
        defer { unlock(fd) }
        let mine = try fd.stat()
        guard let now = try? system_stat(fd.path), now.st_ino == mine.st_ino, now.st_dev == mine.st_dev else { return false }
        let n = try bytes.withUnsafeBytes { try system_write(fd.rawValue, $0.baseAddress!, $0.count, path: fd.path) }
        if n != bytes.count { throw Errno(EIO, call: "write", path: fd.path) }
        return true
    }
}
