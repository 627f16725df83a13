#if canImport(Glibc)
import Glibc
#endif

/// A tool's stderr: per-record failures as `tool: METRIC: reason`, warnings, and progress and
/// a summary when asked for (`--progress`) or when stderr is a terminal. On a terminal the
/// progress line is redrawn twice a second; elsewhere (`--progress` into a log) a plain line
/// is written every 10 seconds. With a known total, progress shows done/total and an ETA.
public final class Diagnostics: @unchecked Sendable {
    public let tool: String
    public let showProgress: Bool
    public let quiet: Bool
    /// Records expected in all, when known (arguments, or stdin redirected from a file).
    public var total: Int?
    let onTerminal: Bool
    public private(set) var records = 0
    public private(set) var failed = 0
    public var skipped = 0
    public var bytesIn: Int64 = 0
    public var bytesOut: Int64 = 0
    /// Counts by outcome (stored, unchanged, created, ...), for the summary.
    public var outcomes: [String: Int] = [:]
    let started = system_monotonic()
    var lastProgress = 0.0

    public init(tool: String, progress: Bool? = nil, quiet: Bool = false) {
        self.tool = tool
        self.quiet = quiet
        self.onTerminal = system_isatty(2)
        self.showProgress = progress ?? (!quiet && onTerminal)
    }

    /// Takes the total for progress from `input` when it is known without reading it.
    public func expect(_ input: RecordInput?) {
        if showProgress, let input { total = input.expectedCount }
    }

    func line(_ text: String) {
        system_write_stderr(Redaction.apply(text) + "\n")
    }

    /// Reports a failed record and counts it.
    public func fail(_ metric: String, _ reason: Any) {
        failed += 1
        line("\(tool): \(metric.isEmpty ? "(empty record)" : Diagnostics.shown(metric)): \(Diagnostics.printable("\(reason)"))")
    }

    /// A metric name as a report shows it: printable, and cut short when absurdly long.
    public static func shown(_ metric: String) -> String {
        let limit = 256
        guard metric.utf8.count > limit else { return printable(metric) }
        return printable(String(decoding: metric.utf8.prefix(limit - 56), as: UTF8.self)) + "...(\(metric.utf8.count) bytes)"
    }

    /// An error that is not about one record; printed even when quiet.
    public func error(_ message: String) {
        line("\(tool): \(message)")
    }

    public func warn(_ message: String) {
        if !quiet { line("\(tool): \(message)") }
    }

    /// Counts one finished record under `outcome`, and updates progress now and then.
    public func done(_ outcome: String) {
        records += 1
        outcomes[outcome, default: 0] += 1
        guard showProgress else { return }
        let now = system_monotonic()
        if now - lastProgress >= (onTerminal ? 0.5 : 10) {
            lastProgress = now
            let text = progressLine(elapsed: now - started)
            if onTerminal {
                system_write_stderr("\r\(text)\u{1b}[K")
            } else {
                line(text)
            }
        }
    }

    /// `tool: 37/120 records (30%), 0 failed, 12.0 MiB in, 1.2 MiB out, 45/s, 4.4 MiB/s, ETA 1m58s`;
    /// without a total, `tool: 37 records, ...` and no ETA.
    public func progressLine(elapsed: Double) -> String {
        let done = records + failed
        let rate = Double(done) / max(elapsed, 0.001)
        var text = "\(tool): "
        if let total, total > 0 {
            text += "\(done)/\(total) records (\(min(100, done * 100 / total))%)"
        } else {
            text += "\(done) records"
        }
        text += ", \(failed) failed, \(Diagnostics.bytes(bytesIn)) in, \(Diagnostics.bytes(bytesOut)) out, "
        text += "\(Int(rate))/s, \(Diagnostics.bytes(Int64(Double(bytesIn) / max(elapsed, 0.001))))/s"
        if let total, total > 0 {
            text += ", ETA " + (done >= total ? "0s" : rate > 0 ? Diagnostics.duration(Double(total - done) / rate) : "-")
        }
        return text
    }

    /// `45s`, `3m07s`, `2h05m`.
    public static func duration(_ seconds: Double) -> String {
        let s = Int(seconds.rounded())
        if s >= 3600 { return "\(s / 3600)h" + (s % 3600 / 60 < 10 ? "0" : "") + "\(s % 3600 / 60)m" }
        if s >= 60 { return "\(s / 60)m" + (s % 60 < 10 ? "0" : "") + "\(s % 60)s" }
        return "\(s)s"
    }

    /// The final summary line; also ends the run with `RecordsFailed` when any record failed.
    public func finish() throws {
        if showProgress {
            let elapsed = system_monotonic() - started
            let parts = outcomes.sorted { $0.key < $1.key }.map { "\($0.value) \($0.key)" }.joined(separator: ", ")
            let rate = elapsed > 0 ? Double(bytesIn) / elapsed : 0
            line("\(onTerminal ? "\r\u{1b}[K" : "")\(tool): \(records) records (\(parts.isEmpty ? "none" : parts)), \(failed) failed, \(skipped) skipped, \(Diagnostics.bytes(bytesIn)) in, \(Diagnostics.bytes(bytesOut)) out, \(String(format1(elapsed))) s, \(Diagnostics.bytes(Int64(rate)))/s")
        }
        if failed > 0 { throw RecordsFailed(count: failed) }
    }

    func format1(_ v: Double) -> String {
        let t = Int((v * 10).rounded())
        return "\(t / 10).\(t % 10)"
    }

    /// `text` with control characters escaped, so one report stays on one line.
    public static func printable(_ text: String) -> String {
        var out = ""
        for u in text.unicodeScalars {
            switch u {
            case "\n": out += "\\n"
            case "\t": out += "\\t"
            case "\r": out += "\\r"
            case "\0": out += "\\0"
            default: out.unicodeScalars.append(u)
            }
        }
        return out
    }

    public static func bytes(_ n: Int64) -> String {
        let units = ["B", "KiB", "MiB", "GiB", "TiB"]
        var v = Double(n), u = 0
        while v >= 1024 && u < units.count - 1 { v /= 1024; u += 1 }
        if u == 0 { return "\(n) B" }
        let t = Int((v * 10).rounded())
        return "\(t / 10).\(t % 10) \(units[u])"
    }
}
