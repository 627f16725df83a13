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
        do {
            thread = try system_startThread { [self] in
                do { try system_syncfs(fd.rawValue, path: path) } catch { self.error = error }
            }
        } catch {
            fd.close()
            throw error
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
