import Synchronization

/// The temp files this process has open, so a SIGINT/SIGTERM can remove them before exit.
public enum TempFiles {
    private static let live = Mutex<Set<String>>([])

    public static func register(_ path: String) { live.withLock { _ = $0.insert(path) } }
    public static func unregister(_ path: String) { live.withLock { _ = $0.remove(path) } }
    public static func removeAll() {
        live.withLock { set in
            for p in set { _ = try? system_unlink(p) }
            set.removeAll()
        }
    }
}
