import ArgumentParser
import WhisperBackup

struct WspPrune: RecordArguments {
    static let configuration = CommandConfiguration(
        commandName: "wsp-prune",
        abstract: "Keep the newest N versions of each metric; purge metrics gone from disk.",
        discussion: """
            RETENTION (--keep N)
            Versions are counted per metric, newest first; equal content is never stored twice in
            a row, so each version differs from the one before it.

            INPUT RECORDS (stdin, or one per argument after STORE; only METRIC is used)
              METRIC  ...          (wsp-find, wsp-push or wsp-pull list output, or bare names)
            With --all, every metric in the store instead.

            OUTPUT RECORDS (one per deleted version)
              METRIC  TIME  HASH  KEY  SIZE  STATUS
              STATUS: deleted, would-delete (--dry-run), purged, would-purge.

            PURGE (--gone-after DAYS)
            Reads the node's COMPLETE metric listing (wsp-find output) on stdin and lists the
            store once. A store metric missing from disk gets a marker METRIC/gone-since.TIME the
            first time a run sees it missing; its versions are purged DAYS after that (not after
            its last backup, so idle metrics keep their backups). A metric back on disk loses its
            marker. With --metrics, only matching store metrics are considered (give the globs
            the listing was made with); with --root, a store metric whose file exists under that
            root is never marked gone or purged, whatever the listing says. Refuses (exit 1, nothing deleted) when it would purge more
            than --max-share of the store's metrics, unless --force: an unmounted volume looks
            like an empty tree.

            EXAMPLES
              wsp-find --root /srv/whisper | wsp-prune --keep 5 file:///backups/node1
              wsp-find --root /srv/whisper | wsp-prune --gone-after 45 file:///backups/node1

            \(exitStatusHelp)
            """,
        version: wspVersion)

    @Option(help: ArgumentHelp("Versions to keep per metric (at least 1).", valueName: "n"))
    var keep: Int?

    @Option(help: ArgumentHelp("Purge metrics gone from disk for this many days (stdin: the complete wsp-find listing).", valueName: "days"))
    var goneAfter: Int?

    @Option(name: .customLong("metrics"), help: ArgumentHelp("With --gone-after: only store metrics matching this glob (repeatable).", valueName: "glob"))
    var metricGlobs: [String] = []

    @Option(help: ArgumentHelp("With --gone-after: the whisper root the listing was made of; a store metric whose file exists there is never marked gone or purged.", valueName: "dir"))
    var root: String?

    @Option(help: ArgumentHelp("With --gone-after: most share of the store's metrics a purge may remove without --force.", valueName: "fraction"))
    var maxShare: Double = 0.5

    @Flag(help: "With --gone-after: purge even past --max-share.")
    var force = false

    @Option(help: ArgumentHelp("The time a purge counts from (default: now).", valueName: "date"))
    var now: String?

    @Option(help: ArgumentHelp("With --gone-after: the state directory of this store (as wsp-push --state); what it vouches for each purged metric is dropped.", valueName: "dir"))
    var state: String?

    @Flag(help: "Prune every metric in the store, not only those named by records.")
    var all = false

    @Flag(help: "Report what would be deleted; delete nothing.")
    var dryRun = false

    @OptionGroup(title: "Store") var storeOptions: StoreOptions
    @OptionGroup(title: "Output") var output: OutputOptions

    @Argument(help: ArgumentHelp("Store URL.", valueName: "store"))
    var store: String

    @Argument(help: ArgumentHelp("Records (default: read from stdin unless --all).", valueName: "record"))
    var records: [String] = []

    func validate() throws {
        switch (keep, goneAfter) {
        case (nil, nil): throw ValidationError("say --keep N (retention) or --gone-after DAYS (purge)")
        case (.some, .some): throw ValidationError("--keep and --gone-after are separate runs")
        case (.some(let k), nil):
            guard k >= 1 else { throw ValidationError("--keep must be at least 1") }
        case (nil, .some(let d)):
            guard d >= 0 else { throw ValidationError("--gone-after must be 0 or more days") }
            if all { throw ValidationError("--gone-after reads the complete listing; --all is for --keep") }
        }
        if root != nil && goneAfter == nil { throw ValidationError("--root is for --gone-after") }
        if all && !records.isEmpty { throw ValidationError("--all takes no records") }
        guard maxShare > 0 && maxShare <= 1 else { throw ValidationError("--max-share must be in (0, 1]") }
    }

    func run() throws {
        if let now { _ = try Timestamp.option(now, "--now") }
        let (store, layout) = try StoreRegistry.open(store, settings: storeOptions.settings(dryRun: dryRun))
        if let goneAfter {
            let globs = try MetricGlob.parseArguments(metricGlobs)
            let t = now.flatMap(Timestamp.parse) ?? Int64(system_now())
            var purge = Purge(store: store, layout: layout, goneAfterDays: goneAfter, now: t, maxShare: maxShare,
                              force: force, dryRun: dryRun, globs: globs)
            purge.root = root
            if let state, !dryRun {
                do { purge.state = try BackupState(dir: state) } catch { throw ConfigError("--state \(state): \(error)") }
            }
            do {
                try purge.run(input: RecordInput(arguments: records), output: RecordWriter(), diagnostics: output.diagnostics("wsp-prune"))
            } catch let e as PurgeRefused {
                output.diagnostics("wsp-prune").error("\(e)")
                throw ExitCode(1)
            }
            return
        }
        guard let keep else { return }
        try Prune(store: store, layout: layout, keep: keep, dryRun: dryRun)
            .run(input: all ? nil : RecordInput(arguments: records), output: RecordWriter(), diagnostics: output.diagnostics("wsp-prune"))
    }
}

ToolMain.run(WspPrune.self, name: "wsp-prune")
