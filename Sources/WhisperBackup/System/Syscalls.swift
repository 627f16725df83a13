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

/// The corresponding C function is `open(2)`. A file opened only for reading is opened with
/// O_NOATIME where the kernel allows it: the project's reads leave access times alone.
public func system_open(_ path: String, _ flags: CInt, _ mode: mode_t = 0o644) throws -> CInt {
    if flags & O_ACCMODE == O_RDONLY && flags & O_CREAT == 0 {
        return try retrying("open", path) { CSystemShims_open_reading(path, flags | O_CLOEXEC) }
    }
    return try retrying("open", path) { open(path, flags | O_CLOEXEC, mode) }
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

/// Renames `from` to `to`, failing with EEXIST rather than replace `to` (and with EINVAL
/// where the filesystem cannot tell, as NFS). The corresponding C function is `renameat2(2)`
/// with `RENAME_NOREPLACE`.
public func system_renameNoReplace(_ from: String, _ to: String) throws {
    _ = try retrying("rename", to) { CSystemShims_rename_noreplace(from, to) }
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

/// The corresponding C function is `getppid(2)`.
public func system_getppid() -> Int32 { getppid() }

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
    /// A regular file's size, with `system_readdir(_:sizes: true)`.
    public var size: Int64? = nil
}

/// Lists a directory's entries except `.` and `..`, in no particular order. With `sizes`,
/// each file (and each entry of unknown kind) is looked at with `fstatat(2)` relative to the
/// open directory, which walks no path: its kind is then exact (a file that went away is
/// left out) and a regular file has its size.
/// The corresponding C calls are `open(2)` and `getdents64(2)`.
public func system_readdir(_ path: String, sizes: Bool = false) throws -> [DirectoryEntry] {
    var out: [DirectoryEntry] = []
    try system_forEachEntry(path, sizes: sizes) { out.append($0) }
    return out
}

/// `system_readdir` one entry at a time, holding none: for directories of any size. With
/// `exactKinds`, an entry whose kind the directory does not give (`DT_UNKNOWN`, on file
/// systems without `d_type`) is stat'ed as with `sizes`.
public func system_forEachEntry(_ path: String, sizes: Bool = false, exactKinds: Bool = false,
                                _ body: (DirectoryEntry) throws -> Void) throws {
    // open(2) and getdents64(2) rather than opendir(3), which also fstat()s the directory:
    // an unchanged run reads one directory per metric.
    let fd = try retrying("opendir", path) { CSystemShims_open_reading(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC) }
    defer { close(fd) }
    try withUnsafeTemporaryAllocation(byteCount: 32768, alignment: 8) { buf in
        while true {
            let n = CSystemShims_getdents64(fd, buf.baseAddress, UInt(buf.count))
            if n < 0 {
                if errno == EINTR { continue }
                throw Errno(errno, call: "getdents64", path: path)
            }
            if n == 0 { return }
            var offset = 0
            while offset < n {
                // struct linux_dirent64: d_ino (8), d_off (8), d_reclen (2), d_type (1), d_name.
                let record = buf.baseAddress! + offset
                let length = Int(record.loadUnaligned(fromByteOffset: 16, as: UInt16.self))
                let type = record.load(fromByteOffset: 18, as: UInt8.self)
                let cName = (record + 19).assumingMemoryBound(to: CChar.self)
                offset += length
                if cName[0] == 0x2E && (cName[1] == 0 || (cName[1] == 0x2E && cName[2] == 0)) { continue }
                let name: String, isUTF8: Bool
                if let s = String(validatingCString: cName) { (name, isUTF8) = (s, true) } else { (name, isUTF8) = (String(cString: cName), false) }
                let kind: DirectoryEntry.Kind
                switch Int32(type) {
                case Int32(DT_REG): kind = .file
                case Int32(DT_DIR): kind = .directory
                case Int32(DT_LNK): kind = .symlink
                case Int32(DT_UNKNOWN): kind = .unknown
                default: kind = .other
                }
                var entry = DirectoryEntry(name: name, kind: kind, isUTF8: isUTF8)
                if (sizes && kind == .file) || ((sizes || exactKinds) && kind == .unknown) {
                    var st = stat()
                    guard fstatat(fd, cName, &st, AT_SYMLINK_NOFOLLOW) == 0 else { continue }
                    switch st.st_mode & S_IFMT {
                    case S_IFREG: entry.kind = .file; entry.size = Int64(st.st_size)
                    case S_IFDIR: entry.kind = .directory
                    case S_IFLNK: entry.kind = .symlink
                    default: entry.kind = .other
                    }
                }
                try body(entry)
            }
        }
    }
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
public func system_write_stderr(_ text: String) { system_write_text(2, text) }

/// Writes `text` whole to stdout (unbuffered); a failure is ignored, as for stderr.
public func system_write_stdout(_ text: String) { system_write_text(1, text) }

private func system_write_text(_ fd: CInt, _ text: String) {
    let bytes = Array(text.utf8)
    bytes.withUnsafeBytes { buf in
        var done = 0
        while done < buf.count {
            let n = write(fd, buf.baseAddress! + done, buf.count - done)
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { return }
            done += n
        }
    }
}

/// Whether this process may access `path` as `mode` asks (R_OK, W_OK, X_OK). The
/// corresponding C function is `access(2)`.
public func system_access(_ path: String, _ mode: CInt) -> Bool { access(path, mode) == 0 }

/// Sets an environment variable for this process and the ones it starts. The corresponding
/// C function is `setenv(3)`.
public func system_setenv(_ name: String, _ value: String) { setenv(name, value, 1) }

/// Changes a file's mode. The corresponding C function is `fchmod(2)`.
public func system_fchmod(_ fd: CInt, _ mode: mode_t) { _ = fchmod(fd, mode) }

/// Changes the mode of the file at `path`. The corresponding C function is `chmod(2)`.
public func system_chmod(_ path: String, _ mode: mode_t) { _ = chmod(path, mode) }

/// The mode a file created with `mode` gets under this process's umask (read once: reading
/// it means setting it, `umask(2)`).
public func system_creationMode(_ mode: mode_t) -> mode_t { mode & ~processUmask }
private let processUmask: mode_t = { let m = umask(0o022); umask(m); return m }()

/// The type (`f_type`) of the filesystem holding `path`, and the bytes free on it for an
/// unprivileged user. The corresponding C function is `statfs(2)`.
public func system_statfs(_ path: String) throws -> (type: Int64, available: Int64) {
    var type: Int64 = 0, available: Int64 = 0
    _ = try retrying("statfs", path) { CSystemShims_statfs(path, &type, &available) }
    return (type, available)
}

/// The effective user ID. The corresponding C function is `geteuid(2)`.
public func system_geteuid() -> uid_t { geteuid() }

/// `seconds` since the epoch as local time in `format`. The corresponding C functions are
/// `localtime_r(3)` and `strftime(3)`.
public func system_localtime(_ seconds: Int64, format: String) -> String {
    var t = time_t(seconds)
    var tmv = tm()
    localtime_r(&t, &tmv)
    var buf = [CChar](repeating: 0, count: 128)
    let n = strftime(&buf, buf.count, format, &tmv)
    return String(decoding: buf[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
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

/// Starts `argv[0]` (looked up in PATH) with stdin, stdout and stderr on the given
/// descriptors, in process group `group` (0: a new group led by the child). Every other
/// descriptor the caller opened with O_CLOEXEC stays behind.
/// The corresponding C functions are `posix_spawnp(3)` and its attribute setters.
public func system_spawn(_ argv: [String], stdin: CInt, stdout: CInt, stderr: CInt, group: pid_t) throws -> pid_t {
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    for (fd, target) in [(stdin, CInt(0)), (stdout, 1), (stderr, 2)] where fd != target {
        posix_spawn_file_actions_adddup2(&actions, fd, target)
    }
    var attr = posix_spawnattr_t()
    posix_spawnattr_init(&attr)
    defer { posix_spawnattr_destroy(&attr) }
    // The stages take SIGINT/SIGTERM as the tools do, whatever this process ignores.
    var defaults = sigset_t()
    sigemptyset(&defaults)
    for sig in [SIGINT, SIGTERM, SIGPIPE] { sigaddset(&defaults, sig) }
    posix_spawnattr_setsigdefault(&attr, &defaults)
    posix_spawnattr_setpgroup(&attr, group)
    posix_spawnattr_setflags(&attr, Int16(POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGDEF))
    var pid: pid_t = 0
    let cArgs = argv.map { strdup($0) } + [nil]
    defer { cArgs.forEach { free($0) } }
    let rc = posix_spawnp(&pid, argv[0], &actions, &attr, cArgs, environ)
    if rc != 0 { throw Errno(rc, call: "posix_spawnp", path: argv[0]) }
    return pid
}

/// Asks the kernel to read the first `length` bytes of `fd` into the page cache, without
/// waiting for them; a hint, so a failure is no error.
/// The corresponding C function is `posix_fadvise(2)` with `POSIX_FADV_WILLNEED`.
func system_readAhead(_ fd: CInt, _ length: Int64) { _ = posix_fadvise(fd, 0, off_t(length), POSIX_FADV_WILLNEED) }

/// Starts a thread that runs `body` and takes no signal: SIGINT and SIGTERM stay with the
/// thread that reads records (`Signals`). The caller joins it (`pthread_join`).
/// The corresponding C functions are `pthread_create(3)` and `pthread_sigmask(3)`.
func system_startThread(_ body: @escaping () -> Void) throws -> pthread_t {
    final class Body {
        let run: () -> Void
        init(_ run: @escaping () -> Void) { self.run = run }
    }
    var all = sigset_t(), old = sigset_t()
    sigfillset(&all)
    pthread_sigmask(SIG_SETMASK, &all, &old)   // inherited by the new thread
    defer { pthread_sigmask(SIG_SETMASK, &old, nil) }
    let context = Unmanaged.passRetained(Body(body)).toOpaque()
    var thread = pthread_t()
    let rc = pthread_create(&thread, nil, { context in
        Unmanaged<Body>.fromOpaque(context!).takeRetainedValue().run()
        return nil
    }, context)
    if rc != 0 {
        Unmanaged<Body>.fromOpaque(context).release()
        throw Errno(rc, call: "pthread_create")
    }
    return thread
}

/// A pipe whose ends are closed on exec (a stage gets one by dup2).
/// The corresponding C functions are `pipe(2)` and `fcntl(2)`.
public func system_pipe() throws -> (read: CInt, write: CInt) {
    var fds: [CInt] = [0, 0]
    guard pipe(&fds) == 0 else { throw Errno(errno, call: "pipe", path: nil) }
    for fd in fds { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
    return (fds[0], fds[1])
}

/// Reaps one child without blocking: its exit status (128+signal for a killed one), or nil
/// while it runs. The corresponding C function is `waitpid(2)`.
public func system_reap(_ pid: pid_t) -> Int32? {
    var status: Int32 = 0
    let r = waitpid(pid, &status, WNOHANG)
    if r == 0 { return nil }
    if r < 0 { return errno == EINTR ? nil : 127 }
    if status & 0x7f == 0 { return (status >> 8) & 0xff }
    return 128 + (status & 0x7f)
}

/// Reaps every exited child, including orphaned descendants handed to this process as their
/// subreaper. The corresponding C function is `waitpid(2)`.
public func system_reapAny() {
    var status: Int32 = 0
    while waitpid(-1, &status, WNOHANG) > 0 {}
}

/// Makes this process the reaper of its orphaned descendants, so a stage that outlives its
/// parent (an xargs stopped before its children) is still waited for here.
/// The corresponding C function is `prctl(2)` (PR_SET_CHILD_SUBREAPER).
public func system_becomeSubreaper() { _ = CSystemShims_set_child_subreaper() }

/// Sends `signal` to every process of group `group`; false when the group is empty.
/// The corresponding C function is `killpg(3)`.
@discardableResult
public func system_signalGroup(_ group: pid_t, _ signal: Int32) -> Bool {
    group > 0 && killpg(group, signal) == 0
}

/// Waits up to `seconds` for `fd` to become readable. The corresponding C function is `poll(2)`.
public func system_pollReadable(_ fd: CInt, seconds: Double) -> Bool {
    var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
    return poll(&p, 1, Int32(seconds * 1000)) > 0
}
