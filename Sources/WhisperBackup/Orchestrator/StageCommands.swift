/// The wsp-* command lines of each mode, for running and for `--print-pipeline`.
public struct StageCommands: Sendable {
    public let plan: RunPlan
    public let spool: String
    public let progress: [String]

    public init(plan: RunPlan, spool: String, progress: [String]) {
        self.plan = plan
        self.spool = spool
        self.progress = progress
    }

    var s: RunSettings { plan.settings }
    var store: [String] { plan.storeOptions + [plan.store ?? ""] }
    var spoolOptions: [String] { ["--spool", spool, "--spool-max", String(plan.spoolMax)] }

    /// xargs running a stage with K records per process, P processes at once (xargs gets
    /// -s 1000000: by default it passes at most 128 KiB of records).
    public func batched(_ k: String, _ argv: [String]) -> [String] {
        ["xargs", "-d", "\n", "-r", "-P", String(s.processes), "-s", "1000000", "-n", k] + argv
    }

    public var find: [String] { ["wsp-find", "--root", s.prefix] + plan.globs }
    public var snap: [String] { ["wsp-snap"] + progress + plan.snapOptions + spoolOptions }
    public var noopSnap: [String] { ["wsp-snap"] + progress + spoolOptions }
    /// The store check before a backup reads anything.
    public var pushCheck: [String] { ["wsp-push"] + progress + plan.stageState + store }
    public var push: [String] { ["wsp-push"] + progress + plan.dry + plan.stageState + plan.pushOptions + store }
    public var retention: [String] { ["wsp-prune"] + progress + plan.dry + plan.storeOptions + ["--keep", String(plan.retention), plan.store ?? ""] }
    public var purge: [String] {
        ["wsp-prune"] + progress + plan.dry + plan.storeOptions + plan.purgeOptions + plan.pruneState + ["--gone-after", String(plan.purgeDays), plan.store ?? ""]
    }
    var before: [String] { s.date.map { ["--before", $0] } ?? [] }
    public var pullList: [String] { ["wsp-pull", "list"] + progress + before + store + plan.globs }
    public var listAll: [String] { ["wsp-pull", "list", "--all"] + before + store + plan.globs }
    /// From a file:// store the objects are read where they lie (`wsp-pull get --in-place`):
    /// wsp-merge only reads them, and copying 100,000 of them into the spool cost a tenth of
    /// a restore.
    var inPlace: [String] { plan.store?.hasPrefix("file://") == true ? ["--in-place"] : [] }
    public var pullGet: [String] { ["wsp-pull", "get"] + inPlace + progress + plan.storeOptions + spoolOptions + [plan.store ?? ""] }
    public var merge: [String] { ["wsp-merge"] + progress + plan.dry + ["--root", s.prefix] }

    /// Shell words, quoted only where needed.
    public static func quote(_ words: [String]) -> String {
        words.map { w -> String in
            let plain = !w.isEmpty && w.unicodeScalars.allSatisfy {
                ($0.value < 128) && (($0.properties.isAlphabetic) || ("0"..."9").contains(Character($0)) || "_./:=@%+-".unicodeScalars.contains($0))
            }
            return plain ? w : "'" + w.split(separator: "'", omittingEmptySubsequences: false).joined(separator: "'\\''") + "'"
        }.joined(separator: " ")
    }

    /// The run as a shell pipeline an operator can read or run by hand (K: records per
    /// process, chosen at run time from --spool-max and the largest file).
    public var pipeline: String {
        let q = StageCommands.quote
        func j(_ parts: String...) -> String { parts.filter { !$0.isEmpty }.joined(separator: " ") }
        let x = "xargs -d '\\n' -r -P \(s.processes) -s 1000000 -n K"
        let sp = q(["--spool", spool, "--spool-max", s.spoolMax])
        let st = q(store)
        let find = j("wsp-find --root", q([s.prefix]), q(plan.globs))
        let purgeCmd = j(find, "| cut -f1 | wsp-prune",
                         q(plan.dry + ["--gone-after", String(plan.purgeDays), "--root", s.prefix] + plan.pruneMetrics), st)
        switch plan.mode {
        case .backup where plan.backend == "noop":
            return j(find, "|", x, "wsp-snap", sp, "| cut -f5 | xargs -d '\\n' -r rm -f") + "\n"
        case .backup:
            var out = find + " \\\n"
            out += "  | " + j(x, "wsp-snap", q(plan.snapOptions), sp) + " \\\n"
            out += "  | " + j(x, "wsp-push", q(plan.dry + plan.stageState + plan.pushOptions), st) + " \\\n"
            out += "  | " + j("awk -F'\\t' '$6 == \"stored\" || $6 == \"would-store\"' | cut -f1 |", x, "wsp-prune",
                              q(plan.dry + ["--keep", String(plan.retention)]), st) + "\n"
            if plan.purgeDays >= 0 { out += purgeCmd + "\n" }
            return out
        case .restore:
            var out = j("wsp-pull list", q(before), st, q(plan.globs)) + " \\\n"
            out += "  | " + j(x, "wsp-pull get", q(inPlace + plan.storeOptions), sp, q([plan.store ?? ""])) + " \\\n"
            out += "  | " + j(x, "wsp-merge", q(plan.dry + ["--root", s.prefix])) + "\n"
            return out
        case .purge:
            return plan.purgeDays < 0 ? "# purge is disabled (-x -1)\n" : purgeCmd + "\n"
        case .list:
            return j("wsp-pull list", q(["--all"] + before), st, q(plan.globs)) + "\n"
        }
    }
}
