/// The figures of a run, counted from the records its stages wrote, and the one-line summary.
public struct RunFigures: Sendable, Equatable {
    public var seen = 0, stored = 0, unchanged = 0, created = 0, filled = 0, failed = 0
    public var bytesRead: Int64 = 0, bytesWritten: Int64 = 0, versionsRemoved = 0
    public init() {}

    static func fields(_ line: Substring) -> [Substring] { line.split(separator: "\t", omittingEmptySubsequences: false) }
    static func lines(_ text: String) -> [Substring] { text.split(separator: "\n") }

    /// A backup: wsp-find's records (seen), wsp-snap's (bytes read), wsp-push's (outcomes),
    /// wsp-prune's (versions removed).
    public static func backup(files: String, snaps: String, pushed: String, pruned: String) -> RunFigures {
        var f = RunFigures()
        f.seen = lines(files).count
        for l in lines(snaps) {
            let c = fields(l)
            if c.count > 4, c[4] != "-", let b = Int64(c[3]) { f.bytesRead += b }
        }
        let p = lines(pushed)
        for l in p {
            let c = fields(l)
            guard c.count > 5 else { continue }
            if c[5] == "stored" || c[5] == "would-store" {
                f.stored += 1
                f.bytesWritten += Int64(c[4]) ?? 0
            } else if c[5] == "unchanged" { f.unchanged += 1 }
        }
        f.failed = f.seen - p.count
        f.versionsRemoved = lines(pruned).count
        return f
    }

    /// A noop backup: files seen, snapshots read.
    public static func noopBackup(files: String, snaps: String) -> RunFigures {
        var f = RunFigures()
        f.seen = lines(files).count
        let s = lines(snaps)
        f.stored = s.count
        for l in s { let c = fields(l); if c.count > 3 { f.bytesRead += Int64(c[3]) ?? 0 } }
        f.failed = f.seen - s.count
        return f
    }

    /// A restore: wsp-pull list's versions (seen), wsp-merge's outcomes.
    public static func restore(versions: String, merged: String) -> RunFigures {
        var f = RunFigures()
        f.seen = lines(versions).count
        let m = lines(merged)
        var failed = 0
        for l in m {
            let c = fields(l)
            guard c.count > 1 else { continue }
            switch c[1] {
            case "created", "would-create":
                f.created += 1
                if c[1] == "created", c.count > 3 { f.bytesWritten += Int64(c[3]) ?? 0 }
            case "filled", "would-fill": f.filled += 1
            case "unchanged": f.unchanged += 1
            case "failed": failed += 1
            default: break
            }
        }
        f.failed = f.seen - m.count + failed
        return f
    }

    /// The summary line (after `whisper-backup: `), `elapsed` seconds with one decimal.
    public func summary(_ mode: RunMode, noop: Bool, noopBackend: Bool = false, elapsed: String) -> String {
        switch mode {
        case .backup where noopBackend:
            return "noop backup: \(seen) files seen, \(stored) read, \(failed) failed, \(bytesRead) bytes read, \(elapsed) s"
        case .backup:
            return noop
                ? "backup: \(seen) files seen, would store \(stored), \(unchanged) unchanged, \(failed) failed, would remove \(versionsRemoved) versions, \(bytesRead) bytes read, would write \(bytesWritten) bytes, \(elapsed) s (dry run: nothing changed)"
                : "backup: \(seen) files seen, \(stored) stored, \(unchanged) unchanged, \(failed) failed, \(versionsRemoved) versions removed, \(bytesRead) bytes read, \(bytesWritten) bytes written, \(elapsed) s"
        case .restore:
            return noop
                ? "restore: \(seen) versions selected, would create \(created), would fill \(filled), \(unchanged) unchanged, \(failed) failed, \(elapsed) s (dry run: nothing changed)"
                : "restore: \(seen) versions selected, \(created) created, \(filled) filled, \(unchanged) unchanged, \(failed) failed, \(bytesWritten) bytes written, \(elapsed) s"
        case .purge:
            return noop ? "purge: would remove \(versionsRemoved) versions, \(elapsed) s (dry run: nothing changed)"
                : "purge: \(versionsRemoved) versions removed, \(elapsed) s"
        case .list:
            return ""
        }
    }

    /// The figures as (name, labels, value) samples: node_exporter's names without the
    /// `whisper_backup_` prefix; labels are status= (files) or direction= (bytes).
    public func samples(_ mode: RunMode, exitCode: Int32, end: Int64, duration: String) -> [(name: String, label: String?, value: String)] {
        var out: [(String, String?, String)] = [("last_run_timestamp_seconds", nil, "\(end)")]
        if exitCode == 0 { out.append(("last_success_timestamp_seconds", nil, "\(end)")) }
        out += [("last_run_success", nil, exitCode == 0 ? "1" : "0"), ("last_run_exit_code", nil, "\(exitCode)"),
                ("last_run_duration_seconds", nil, duration), ("last_run_failures", nil, "\(failed)"),
                ("last_run_versions_removed", nil, "\(versionsRemoved)"),
                ("last_run_bytes", "direction=read", "\(bytesRead)"), ("last_run_bytes", "direction=written", "\(bytesWritten)")]
        switch mode {
        case .backup:
            for (k, v) in [("seen", seen), ("stored", stored), ("unchanged", unchanged), ("failed", failed)] {
                out.append(("last_run_files", "status=\(k)", "\(v)"))
            }
        case .restore:
            for (k, v) in [("seen", seen), ("created", created), ("filled", filled), ("unchanged", unchanged),
                           ("failed", failed)] {
                out.append(("last_run_files", "status=\(k)", "\(v)"))
            }
        default: break
        }
        return out
    }
}
