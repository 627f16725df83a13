#if canImport(Glibc)
import Glibc
#endif

/// A tool's stderr: per-record failures as `tool: METRIC: reason`, warnings, and progress and
/// a summary when asked for (`--progress`) or when stderr is a terminal.
public final class Diagnostics: @unchecked Sendable {
    public let tool: String
    public let showProgress: Bool
    public let quiet: Bool
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
        self.showProgress = progress ?? (!quiet && system_isatty(2))
    }

    func line(_ text: String) {
        let bytes = Array((text + "\n").utf8)
        bytes.withUnsafeBytes { _ = write(2, $0.baseAddress, $0.count) }
    }

    /// Reports a failed record and counts it.
    public func fail(_ metric: String, _ reason: Any) {
        failed += 1
        line("\(tool): \(metric.isEmpty ? "(empty record)" : Diagnostics.printable(metric)): \(reason)")
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
        if now - lastProgress >= 0.5 {
            lastProgress = now
            let rate = Double(records) / max(now - started, 0.001)
            let text = "\(tool): \(records) records, \(failed) failed, \(Diagnostics.bytes(bytesIn)) in, \(Diagnostics.bytes(bytesOut)) out, \(Int(rate))/s"
            let bytes = Array("\r\(text)\u{1b}[K".utf8)
            bytes.withUnsafeBytes { _ = write(2, $0.baseAddress, $0.count) }
        }
    }

    /// The final summary line; also ends the run with `RecordsFailed` when any record failed.
    public func finish() throws {
        if showProgress {
            let elapsed = system_monotonic() - started
            let parts = outcomes.sorted { $0.key < $1.key }.map { "\($0.value) \($0.key)" }.joined(separator: ", ")
            let rate = elapsed > 0 ? Double(bytesIn) / elapsed : 0
            line("\r\u{1b}[K\(tool): \(records) records (\(parts.isEmpty ? "none" : parts)), \(failed) failed, \(skipped) skipped, \(Diagnostics.bytes(bytesIn)) in, \(Diagnostics.bytes(bytesOut)) out, \(String(format1(elapsed))) s, \(Diagnostics.bytes(Int64(rate)))/s")
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
