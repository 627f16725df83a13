import ArgumentParser
import WhisperBackup

struct WspPrune: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "wsp-prune",
        abstract: "Keep the newest N versions of each metric; delete the rest.",
        discussion: """
            Versions are counted per metric, newest first; equal content is never stored twice in
            a row, so each version differs from the one before it.

            INPUT RECORDS (stdin, or one per argument after STORE; only METRIC is used)
              METRIC  ...          (wsp-find, wsp-push or wsp-pull list output, or bare names)
            With --all, every metric in the store instead.

            OUTPUT RECORDS (one per deleted version)
              METRIC  TIME  HASH  KEY  SIZE  STATUS       (STATUS: deleted or would-delete)

            EXAMPLE
              wsp-find --root /srv/whisper | wsp-prune --keep 5 file:///backups/node1

            \(exitStatusHelp)
            """,
        version: wspVersion)

    @Option(help: ArgumentHelp("Versions to keep per metric (at least 1).", valueName: "n"))
    var keep: Int

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
        guard keep >= 1 else { throw ValidationError("--keep must be at least 1") }
        if all && !records.isEmpty { throw ValidationError("--all takes no records") }
    }

    func run() throws {
        let (store, layout) = try StoreRegistry.open(store, settings: storeOptions.settings(dryRun: dryRun))
        try Prune(store: store, layout: layout, keep: keep, dryRun: dryRun)
            .run(input: all ? nil : RecordInput(arguments: records), output: RecordWriter(), diagnostics: output.diagnostics("wsp-prune"))
    }
}

ToolMain.run(WspPrune.self, name: "wsp-prune")
