#if canImport(Glibc)
import Glibc
#endif
import Synchronization

/// SIGINT/SIGTERM handling: the first signal asks the tool to stop taking records (it
/// finishes or undoes the current one, removes its temp files and exits 128+signal);
/// blocking reads are interrupted (no SA_RESTART) so a tool waiting on its input stops too.
public enum Signals {
    private static let received = Atomic<Int32>(0)

    /// The signal that asked us to stop, or 0.
    public static var pending: Int32 { received.load(ordering: .relaxed) }
    public static var stopRequested: Bool { pending != 0 }

    public static func install() {
        for sig in [SIGINT, SIGTERM] {
            system_on_signal(sig) { sig in Signals.received.store(sig, ordering: .relaxed) }
        }
        // A closed downstream pipe is reported as EPIPE on write, and the tool exits quietly.
        system_ignore_signal(SIGPIPE)
    }

    /// Test hook: forget a received signal.
    public static func reset() { received.store(0, ordering: .relaxed) }
}
