import CSystemShims
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

// Every libc call of the project goes through this file: `system_foo` wraps `foo`,
// retries EINTR and throws an `Errno` that names the call and the path.

@inline(__always)
private func retrying<T: BinaryInteger>(_ call: String, _ path: String?, _ body: () -> T) throws -> T {
    while true {
        let r = body()
        if r >= 0 { return r }
        let e = errno
        if e == EINTR { continue }
        throw Errno(e, call: call, path: path)
    }
}

/// The corresponding C function is `open(2)`.
public func system_open(_ path: String, _ flags: CInt, _ mode: mode_t = 0o644) throws -> CInt {
    try retrying("open", path) { open(path, flags | O_CLOEXEC, mode) }
}

/// The corresponding C function is `openat(2)`.
public func system_openat(_ dirfd: CInt, _ name: String, _ flags: CInt, _ mode: mode_t = 0o644, path: String? = nil) throws -> CInt {
    try retrying("openat", path ?? name) { openat(dirfd, name, flags | O_CLOEXEC, mode) }
}

/// The corresponding C function is `close(2)`. EINTR is not retried: the descriptor is gone either way.
public func system_close(_ fd: CInt) {
    _ = close(fd)
}

/// The corresponding C function is `pread(2)`.
public func system_pread(_ fd: CInt, _ buf: UnsafeMutableRawPointer, _ count: Int, _ offset: Int64, path: String? = nil) throws -> Int {
    try retrying("pread", path) { pread(fd, buf, count, off_t(offset)) }
}

/// The current offset of `fd`. The corresponding C function is `lseek(2)` (`SEEK_CUR`).
public func system_tell(_ fd: CInt, path: String? = nil) throws -> Int64 {
    Int64(try retrying("lseek", path) { lseek(fd, 0, SEEK_CUR) })
}

/// The corresponding C function is `pwrite(2)`.
public func system_pwrite(_ fd: CInt, _ buf: UnsafeRawPointer, _ count: Int, _ offset: Int64, path: String? = nil) throws -> Int {
    try retrying("pwrite", path) { pwrite(fd, buf, count, off_t(offset)) }
}

/// The corresponding C function is `read(2)`.
public func system_read(_ fd: CInt, _ buf: UnsafeMutableRawPointer, _ count: Int, path: String? = nil) throws -> Int {
    try retrying("read", path) { read(fd, buf, count) }
}

/// The corresponding C function is `write(2)`.
public func system_write(_ fd: CInt, _ buf: UnsafeRawPointer, _ count: Int, path: String? = nil) throws -> Int {
    try retrying("write", path) { write(fd, buf, count) }
}

/// The corresponding C function is `fstat(2)`.
public func system_fstat(_ fd: CInt, path: String? = nil) throws -> stat {
    var st = stat()
    _ = try retrying("fstat", path) { fstat(fd, &st) }
    return st
}

/// The corresponding C function is `stat(2)`.
public func system_stat(_ path: String) throws -> stat {
    var st = stat()
    _ = try retrying("stat", path) { stat(path, &st) }
    return st
}

/// The corresponding C function is `lstat(2)`.
public func system_lstat(_ path: String) throws -> stat {
    var st = stat()
    _ = try retrying("lstat", path) { lstat(path, &st) }
    return st
}

/// The corresponding C function is `flock(2)`.
public func system_flock(_ fd: CInt, _ op: CInt, path: String? = nil) throws {
    _ = try retrying("flock", path) { flock(fd, op) }
}

/// The corresponding C function is `fsync(2)`.
public func system_fsync(_ fd: CInt, path: String? = nil) throws {
    _ = try retrying("fsync", path) { fsync(fd) }
}

/// Flushes every file of the filesystem that holds `fd`. The corresponding C function is `syncfs(2)`.
public func system_syncfs(_ fd: CInt, path: String? = nil) throws {
    _ = try retrying("syncfs", path) { CSystemShims_syncfs(fd) }
}

/// Starts writing a file's dirty pages to disk without waiting, so a later sync finds most of
/// the work done. The corresponding C function is `sync_file_range(2)` (SYNC_FILE_RANGE_WRITE).
public func system_start_writeback(_ fd: CInt, path: String? = nil) {
    _ = CSystemShims_start_writeback(fd)
}

/// Allocates the blocks of `[0, length)` and extends the file to `length`; false where the
/// filesystem cannot (EOPNOTSUPP: NFSv3, some FUSE filesystems). The corresponding C function
/// is `fallocate(2)` with mode 0.
public func system_fallocate(_ fd: CInt, _ length: Int64, path: String? = nil) throws -> Bool {
    do {
        _ = try retrying("fallocate", path) { CSystemShims_fallocate(fd, 0, length) }
        return true
    } catch let e as Errno where e.rawValue == EOPNOTSUPP || e.rawValue == ENOSYS {
        return false
    }
}

/// The corresponding C function is `truncate(2)`.
public func system_truncate(_ path: String, _ length: Int64) throws {
    _ = try retrying("truncate", path) { truncate(path, off_t(length)) }
}

/// The corresponding C function is `ftruncate(2)`.
public func system_ftruncate(_ fd: CInt, _ length: Int64, path: String? = nil) throws {
    _ = try retrying("ftruncate", path) { ftruncate(fd, off_t(length)) }
}

/// The corresponding C function is `rename(2)`.
public func system_rename(_ from: String, _ to: String) throws {
    _ = try retrying("rename", to) { rename(from, to) }
}

/// The corresponding C function is `link(2)`: fails with EEXIST rather than replace `to`.
public func system_link(_ from: String, _ to: String) throws {
    _ = try retrying("link", to) { link(from, to) }
}

/// The corresponding C function is `unlink(2)`.
public func system_unlink(_ path: String) throws {
    _ = try retrying("unlink", path) { unlink(path) }
}

/// The corresponding C function is `rmdir(2)`.
public func system_rmdir(_ path: String) throws {
    _ = try retrying("rmdir", path) { rmdir(path) }
}

/// The corresponding C function is `mkdir(2)`.
public func system_mkdir(_ path: String, _ mode: mode_t = 0o755) throws {
    _ = try retrying("mkdir", path) { mkdir(path, mode) }
}

/// The corresponding C function is `realpath(3)`.
public func system_realpath(_ path: String) throws -> String {
    guard let p = realpath(path, nil) else { throw Errno(errno, call: "realpath", path: path) }
    defer { free(p) }
    return String(cString: p)
}

/// The corresponding C function is `getpid(2)`.
public func system_getpid() -> Int32 { processID }

/// The tools never fork, so the id is read once (glibc makes every getpid a system call).
private let processID = getpid()

/// Whether a process with this id exists (`kill(pid, 0)` does not fail with ESRCH).
/// The corresponding C function is `kill(2)`.
public func system_processExists(_ pid: Int32) -> Bool {
    pid > 0 && (kill(pid, 0) == 0 || errno != ESRCH)
}

/// One entry of a directory listing: its name and the kind `readdir(3)` reported.
public struct DirectoryEntry: Sendable {
    public enum Kind: Sendable { case file, directory, symlink, other, unknown }
    public var name: String
    public var kind: Kind
    /// Whether the name's bytes are valid UTF-8 (`name` holds a repaired copy otherwise).
    public var isUTF8: Bool = true
}

/// Lists a directory's entries except `.` and `..`, in no particular order.
/// The corresponding C functions are `opendir(3)`, `readdir(3)` and `closedir(3)`.
public func system_readdir(_ path: String) throws -> [DirectoryEntry] {
    guard let dir = opendir(path) else { throw Errno(errno, call: "opendir", path: path) }
    defer { closedir(dir) }
    var out: [DirectoryEntry] = []
    while let ent = readdir(dir) {
        let (name, isUTF8) = withUnsafePointer(to: ent.pointee.d_name) {
            $0.withMemoryRebound(to: CChar.self, capacity: 256) { p -> (String, Bool) in
                if let s = String(validatingCString: p) { return (s, true) }
                return (String(cString: p), false)
            }
        }
        if name == "." || name == ".." { continue }
        let kind: DirectoryEntry.Kind
        switch Int32(ent.pointee.d_type) {
        case Int32(DT_REG): kind = .file
        case Int32(DT_DIR): kind = .directory
        case Int32(DT_LNK): kind = .symlink
        case Int32(DT_UNKNOWN): kind = .unknown
        default: kind = .other
        }
        out.append(DirectoryEntry(name: name, kind: kind, isUTF8: isUTF8))
    }
    return out
}

/// Sleeps for `seconds`. The corresponding C function is `nanosleep(2)`.
public func system_sleep(_ seconds: Double) {
    var ts = timespec(tv_sec: Int(seconds), tv_nsec: Int((seconds - Double(Int(seconds))) * 1e9))
    var rest = timespec()
    // An interrupted sleep returns early, so a stop request is seen promptly.
    _ = nanosleep(&ts, &rest)
}

/// Seconds since the epoch, with sub-second precision. The corresponding C function is `clock_gettime(2)`.
public func system_now() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_REALTIME, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
}

/// Seconds of a monotonic clock, for timeouts. The corresponding C function is `clock_gettime(2)`.
public func system_monotonic() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
}

/// Whether `fd` is a terminal. The corresponding C function is `isatty(3)`.
public func system_isatty(_ fd: CInt) -> Bool { isatty(fd) == 1 }

/// The value of an environment variable. The corresponding C function is `getenv(3)`.
public func system_getenv(_ name: String) -> String? {
    guard let p = getenv(name) else { return nil }
    return String(cString: p)
}

/// One `read(2)`: EINTR is thrown (as `Errno.interrupted`), not retried, so a reader blocked
/// on its input sees a stop request.
public func system_read_once(_ fd: CInt, _ buf: UnsafeMutableRawBufferPointer) throws -> Int {
    let n = read(fd, buf.baseAddress, buf.count)
    if n < 0 { throw Errno(errno, call: "read", path: nil) }
    return n
}

/// One `write(2)`: EINTR is thrown (as `Errno.interrupted`), not retried, so a writer blocked
/// on a stalled reader sees a stop request.
public func system_write_once(_ fd: CInt, _ buf: UnsafeRawBufferPointer) throws -> Int {
    let n = write(fd, buf.baseAddress, buf.count)
    if n < 0 { throw Errno(errno, call: "write", path: nil) }
    return n
}

/// Writes `text` whole to stderr; a failure is ignored (there is nowhere left to report it).
public func system_write_stderr(_ text: String) {
    let bytes = Array(text.utf8)
    bytes.withUnsafeBytes { buf in
        var done = 0
        while done < buf.count {
            let n = write(2, buf.baseAddress! + done, buf.count - done)
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { return }
            done += n
        }
    }
}

/// Ends the process. The corresponding C function is `exit(3)`.
public func system_exit(_ code: Int32) -> Never { exit(code) }

/// The C library's text for an errno. The corresponding C function is `strerror(3)`.
public func system_strerror(_ number: CInt) -> String { String(cString: strerror(number)) }

/// The broken-down UTC time of `seconds` since the epoch. The corresponding C function is `gmtime_r(3)`.
public func system_gmtime(_ seconds: Int64) -> tm {
    var t = time_t(seconds)
    var out = tm()
    gmtime_r(&t, &out)
    return out
}

/// Seconds since the epoch of a broken-down UTC time. The corresponding C function is `timegm(3)`.
public func system_timegm(_ time: tm) -> Int64 {
    var t = time
    return Int64(timegm(&t))
}

/// Runs `handler` on `signal`, without SA_RESTART (blocking calls are interrupted). The
/// corresponding C function is `sigaction(2)`.
public func system_on_signal(_ signal: CInt, _ handler: @escaping @convention(c) (CInt) -> Void) {
    var action = sigaction()
    action.__sigaction_handler.sa_handler = handler
    sigemptyset(&action.sa_mask)
    action.sa_flags = 0
    sigaction(signal, &action, nil)
}

/// Ignores `sig`. The corresponding C function is `signal(2)`.
public func system_ignore_signal(_ sig: CInt) {
    signal(sig, SIG_IGN)
}
