#if canImport(Glibc)
import Glibc
#endif

/// The run's log: every line of the stages' stderr and of the run itself, timestamped, to
/// stderr (with -q only failures, warnings and errors), the log file and syslog (local3).
/// Every line reads `TIME TOOL: [METRIC: ]MESSAGE`.
public final class RunLog {
    /// A line that starts with it goes to the log file and syslog only.
    public static let logOnly = "\u{1e}"
    public var quiet: Bool
    public var file: CInt?
    public var syslog: Bool
    /// Clears a progress line first (progress on a terminal).
    public var clear = false
    private var partial: [UInt8] = []

    public init(quiet: Bool, file: CInt?, syslog: Bool) {
        self.quiet = quiet
        self.file = file
        self.syslog = syslog
        if syslog { openlog("whisper-backup", 0, LOG_LOCAL3) }
    }

    /// Whether a line is shown on stderr: always, unless -q; with -q a record's failure
    /// (`tool: METRIC: reason`), an error or a warning.
    public static func shows(_ line: String, quiet: Bool) -> Bool {
        !quiet || line.contains("error") || line.contains("WARN") || twoSeparators(line)
    }

    /// syslog's priority: err for a record's failure a stage reported (`wsp-x: METRIC: reason`).
    public static func priority(_ line: String) -> Int32 {
        line.hasPrefix("wsp-") && twoSeparators(line) ? LOG_ERR : LOG_INFO
    }

    /// `*": "*": "*`: a tool, a metric and a reason.
    static func twoSeparators(_ line: String) -> Bool {
        let u = Array(line.utf8)
        var count = 0, i = 0
        while i + 1 < u.count {
            if u[i] == 58 && u[i + 1] == 32 { count += 1; if count == 2 { return true }; i += 2 } else { i += 1 }
        }
        return false
    }

    public static func timestamp(_ t: Int64 = Int64(system_now())) -> String {
        system_localtime(t, format: "%Y-%m-%dT%H:%M:%S%z")
    }

    /// One line (no newline).
    public func line(_ raw: String) {
        var line = raw
        var show = true
        if line.hasPrefix(RunLog.logOnly) { line.removeFirst(); show = false }
        let ts = RunLog.timestamp()
        if show && RunLog.shows(line, quiet: quiet) {
            system_write_stderr("\(clear ? "\r\u{1b}[K" : "")\(ts) \(line)\n")
        }
        if let file { try? FileDescriptor(rawValue: file, path: "log file").writeAll("\(ts) \(line)\n") }
        if syslog {
            line.withCString { c in withVaList([c]) { vsyslog(RunLog.priority(line), "%s", $0) } }
        }
    }

    /// Bytes from the stages' stderr: whole lines are logged, the rest kept for later.
    public func feed(_ bytes: ArraySlice<UInt8>) {
        partial += bytes
        while let nl = partial.firstIndex(of: 10) {
            line(String(decoding: partial[..<nl], as: UTF8.self))
            partial.removeSubrange(...nl)
        }
    }

    /// What is left of a last line without its newline.
    public func flush() {
        if !partial.isEmpty { line(String(decoding: partial, as: UTF8.self)); partial = [] }
    }
}

