import Synchronization

/// What a process does before it waits (a lock another holds, a full spool, a retry's pause),
/// registered by the layers above: `RecordWriter` passes on the records it holds, so the
/// next stage is not kept waiting too.
public enum Waiting {
    private static let hooks = Mutex<[@Sendable () -> Void]>([])

    public static func register(_ hook: @escaping @Sendable () -> Void) { hooks.withLock { $0.append(hook) } }

    /// Runs the hooks: call right before a wait.
    public static func willWait() {
        for hook in hooks.withLock({ $0 }) { hook() }
    }
}
