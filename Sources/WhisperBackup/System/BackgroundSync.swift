#if canImport(Glibc)
import Glibc
#endif

/// A `syncfs(2)` of the filesystem holding `path`, run on a thread of its own, so that a
/// stage writes its next files while the kernel writes the last ones out; `wait()` joins it.
/// The thread takes no signal: SIGINT and SIGTERM stay with the thread that reads records.
final class BackgroundSync {
    private let path: String
    private let fd: FileDescriptor
    private var thread = pthread_t()
    private var error: Error?

    init(path: String) throws {
        self.path = path
        fd = try FileDescriptor.open(path, O_RDONLY)
        var all = sigset_t(), old = sigset_t()
        sigfillset(&all)
        pthread_sigmask(SIG_SETMASK, &all, &old)   // inherited by the new thread
        defer { pthread_sigmask(SIG_SETMASK, &old, nil) }
        let context = Unmanaged.passRetained(self).toOpaque()
        let rc = pthread_create(&thread, nil, { context in
            let sync = Unmanaged<BackgroundSync>.fromOpaque(context!).takeRetainedValue()
            do { try system_syncfs(sync.fd.rawValue, path: sync.path) } catch { sync.error = error }
            return nil
        }, context)
        if rc != 0 {
            Unmanaged<BackgroundSync>.fromOpaque(context).release()
            fd.close()
            throw Errno(rc, call: "pthread_create", path: path)
        }
    }

    /// Waits for the sync; its error, or nil once everything written before it began is
    /// durable.
    func wait() -> Error? {
        pthread_join(thread, nil)
        fd.close()
        return error
    }
}
