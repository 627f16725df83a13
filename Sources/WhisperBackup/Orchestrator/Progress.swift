#if canImport(Glibc)
import Glibc
#endif

/// The progress of a run: records done (lines of DONE) of TOTAL, bytes (the sum of a column of
/// BYTES), rate and ETA; redrawn every second on a terminal, a line every 10 s otherwise.
final class RunProgress {
    unowned let run: Orchestrator
    let total: Int, done: String, bytes: String, column: Int, what: String
    let t0 = system_now()
    var last = 0.0
    var byteCount: Int64 = 0
    var offset = 0

    init(_ run: Orchestrator, total: Int, done: String, bytes: String, column: Int, what: String) {
        self.run = run; self.total = total; self.done = done; self.bytes = bytes; self.column = column; self.what = what
    }

    func tick() {
        let now = system_now()
        guard now - last >= (run.ttyErr ? 1 : 10) else { return }
        last = now
        let n = run.text(done).split(separator: "\n").count
        let b = run.text(bytes)
        let u = Array(b.utf8)
        if let end = u.lastIndex(of: 10), end + 1 > offset {
            for l in String(decoding: u[offset...end], as: UTF8.self).split(separator: "\n") {
                let f = l.split(separator: "\t", omittingEmptySubsequences: false)
                if f.count > max(column, 4), f[4] != "-" { byteCount += Int64(f[column]) ?? 0 }
            }
            offset = end + 1
        }
        system_write_stderr((run.ttyErr ? "\r" : "") + RunProgress.line(mode: run.plan.mode, n: n, total: total, what: what, bytes: byteCount, elapsed: now - t0)
              + (run.ttyErr ? "\u{1b}[K" : "\n"))
    }

    static func human(_ x: Double) -> String {
        var x = x, u = 0
        while x >= 1024 && u < 4 { x /= 1024; u += 1 }
        return u == 0 ? "\(Int(x)) B" : format("%.1f", x) + " " + ["", "KiB", "MiB", "GiB", "TiB"][u]
    }
    static func duration(_ s: Double) -> String {
        let s = Int(s + 0.5)
        return s >= 3600 ? "\(s / 3600)h" + format("%02d", s % 3600 / 60) + "m" : s >= 60 ? "\(s / 60)m" + format("%02d", s % 60) + "s" : "\(s)s"
    }
    static func format(_ f: String, _ v: CVarArg) -> String {
        var buf = [CChar](repeating: 0, count: 64)
        _ = withVaList([v]) { vsnprintf(&buf, 64, f, $0) }
        return String(cString: buf)
    }

    /// `whisper-backup: MODE: n/total WHAT (P%), BYTES, R files/s, B/s, ETA T`.
    static func line(mode: RunMode, n: Int, total: Int, what: String, bytes: Int64, elapsed: Double) -> String {
        let r = elapsed > 0 ? Double(n) / elapsed : 0
        let pct = total > 0 ? 100 * n / total : 100
        let eta = r > 0 && total > n ? duration(Double(total - n) / r) : (n >= total ? "0s" : "-")
        return "whisper-backup: \(mode.rawValue): \(n)/\(total) \(what) (\(pct)%), \(human(Double(bytes))), "
            + format("%.1f", r) + " files/s, \(human(elapsed > 0 ? Double(bytes) / elapsed : 0))/s, ETA \(eta)"
    }
}
