#if canImport(Glibc)
import Glibc
#endif

/// A stop asked by SIGINT/SIGTERM while stages ran.
public struct RunStopped: Error { public var signal: Int32 }

/// The stages of one pipeline, started in one process group (so one signal reaches every
/// process in it, including one an xargs starts meanwhile), and waited for while their
/// stderr goes to the run's log.
public final class StageGroup {
    public private(set) var group: pid_t = 0
    private var pids: [pid_t] = []
    private var statuses: [Int32?] = []
    let logRead: CInt
    let logWrite: CInt
    let log: RunLog

    public init(log: RunLog, logPipe: (read: CInt, write: CInt)) {
        self.log = log
        logRead = logPipe.read
        logWrite = logPipe.write
    }

    /// Starts a stage; its stderr goes to the log. A stage that cannot start stops the group.
    @discardableResult
    public func start(_ argv: [String], stdin: CInt, stdout: CInt) throws -> Int {
        do {
            let pid = try system_spawn(argv, stdin: stdin, stdout: stdout, stderr: logWrite, group: group)
            if group == 0 { group = pid }
            pids.append(pid)
            statuses.append(nil)
            return pids.count - 1
        } catch {
            stop()
            throw error
        }
    }

    /// Reads what the stages wrote to stderr, waiting up to `seconds` for some.
    public func pumpLog(_ seconds: Double) {
        var buf = [UInt8](repeating: 0, count: 65536)
        var wait = seconds
        while system_pollReadable(logRead, seconds: wait) {
            let n = buf.withUnsafeMutableBytes { (try? system_read_once(logRead, $0)) ?? -1 }
            if n <= 0 { break }
            log.feed(buf[0..<n])
            wait = 0
        }
    }

    /// Waits for every stage; their exit statuses in start order. A SIGINT/SIGTERM stops
    /// the group and throws `RunStopped` once every process of it has exited.
    public func wait(tick: () -> Void = {}) throws -> [Int32] {
        // Short stages end within milliseconds: look often at first, then every 50 ms.
        var pause = 0.001
        while true {
            for i in pids.indices where statuses[i] == nil { statuses[i] = system_reap(pids[i]) }
            if statuses.allSatisfy({ $0 != nil }) { break }
            if Signals.stopRequested {
                stop()
                throw RunStopped(signal: Signals.pending)
            }
            pumpLog(pause)
            pause = min(pause * 2, 0.05)
            tick()
        }
        pumpLog(0)
        let out = statuses.map { $0! }
        pids = []; statuses = []; group = 0
        return out
    }

    /// SIGTERM to every process of the group: the tools finish or undo their current record,
    /// remove their temp files and exit; xargs and tee just die. Whatever still runs after
    /// 30 s is killed. Returns once the group is empty (this process is the subreaper of the
    /// stages, so it reaps every one of them, orphans included).
    public func stop() {
        guard group > 0 else { return }
        system_signalGroup(group, SIGTERM)
        let killAt = system_monotonic() + 30
        var killed = false
        while system_signalGroup(group, 0) {
            for i in pids.indices where statuses[i] == nil { statuses[i] = system_reap(pids[i]) }
            system_reapAny()
            if !killed && system_monotonic() > killAt { system_signalGroup(group, SIGKILL); killed = true }
            pumpLog(0.05)
        }
        pumpLog(0)
        pids = []; statuses = []; group = 0
    }
}
