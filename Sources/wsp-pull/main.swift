import ArgumentParser
import WhisperBackup

struct WspPull: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "wsp-pull",
        abstract: "List versions in a store, or download chosen versions into a spool.",
        discussion: """
            EXAMPLES
              wsp-pull list --before 2026-11-01 file:///backups/node1 'servers.web*' \\
                | xargs -d '\\n' -P 4 -n 50 wsp-pull get --spool /var/tmp/wsp file:///backups/node1 \\
                | wsp-merge --root /srv/whisper
              wsp-pull verify --sample 5 file:///backups/node1 '*'

            \(exitStatusHelp)
            """,
        version: wspVersion,
        subcommands: [List.self, Get.self, Verify.self])

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "List versions: the newest at or before a date per metric, or all of them.",
            discussion: """
                With GLOBs, lists the metrics that match (one listing pass per glob prefix).
                Without, reads metric names as records from stdin (first field), so
                `wsp-find ... | wsp-pull list STORE` lists what is on disk.

                OUTPUT RECORDS
                  METRIC  TIME  HASH  KEY  SIZE
                  HASH is the SHA-256 of the uncompressed file (SHA-1 for the Python tool's
                  legacy layout); SIZE the stored object's bytes.

                EXAMPLE
                  wsp-pull list --before 2026-11-01 file:///backups/node1 'servers.web*' \\
                    | wsp-pull get --spool /var/tmp/wsp file:///backups/node1

                \(exitStatusHelp)
                """)

        @Option(help: ArgumentHelp("Only versions at or before this time (2026-11-01, 2026-11-01T12:00:00Z, 20261101T120000Z, @epoch).", valueName: "date"))
        var before: String?

        @Flag(help: "Every version (at or before --before), oldest first, not only the newest.")
        var all = false

        @OptionGroup(title: "Store") var storeOptions: StoreOptions
        @OptionGroup(title: "Output") var output: OutputOptions

        @Argument(help: ArgumentHelp("Store URL.", valueName: "store"))
        var store: String

        @Argument(help: ArgumentHelp("Metric globs (default: metric names from stdin).", valueName: "glob"))
        var globs: [String] = []

        func run() throws {
            var cutoff: Int64? = nil
            if let before {
                cutoff = try Timestamp.option(before, "--before")
            }
            let patterns = try MetricGlob.parseArguments(globs)
            let (store, layout) = try StoreRegistry.open(store, settings: storeOptions.settings())
            try PullList(store: store, layout: layout, before: cutoff, all: all)
                .run(globs: patterns, input: patterns.isEmpty ? RecordInput(arguments: []) : nil,
                     output: RecordWriter(), diagnostics: output.diagnostics("wsp-pull"))
        }
    }

    struct Get: RecordArguments {
        static let configuration = CommandConfiguration(
            abstract: "Download versions named by version records into the spool.",
            discussion: """
                INPUT RECORDS (stdin, or one per argument after STORE)
                  METRIC  TIME  HASH  [KEY  [SIZE]]      (wsp-pull list's output)

                OUTPUT RECORDS
                  METRIC  TIME  HASH  GZFILE
                  GZFILE is the downloaded object in the spool, not yet verified:
                  wsp-merge verifies it before it touches anything. From a file://
                  store on the spool's filesystem it is a hard link to the stored
                  object: read it or remove it, never write to it. With --in-place
                  (file:// stores) a full version's GZFILE is the stored object
                  itself: read it, never remove or write it (wsp-merge removes
                  spool files only).

                EXAMPLE
                  wsp-pull list file:///backups/node1 'servers.*' \\
                    | xargs -d '\\n' -P 4 -n 50 \\
                        wsp-pull get --spool /var/tmp/wsp file:///backups/node1 \\
                    | wsp-merge --root /srv/whisper

                \(exitStatusHelp)
                """)

        @Flag(help: "file:// stores: give the stored object itself as a full version's GZFILE, not a copy in the spool (for wsp-merge, which only reads it).")
        var inPlace = false

        @OptionGroup(title: "Spool") var spool: SpoolOptions
        @OptionGroup(title: "Store") var storeOptions: StoreOptions
        @OptionGroup(title: "Output") var output: OutputOptions

        @Argument(help: ArgumentHelp("Store URL.", valueName: "store"))
        var store: String

        @Argument(help: ArgumentHelp("Records (default: read from stdin).", valueName: "record"))
        var records: [String] = []

        func validate() throws {
            if inPlace && !store.hasPrefix("file://") {
                throw ValidationError("--in-place is for file:// stores (it reads their objects where they lie)")
            }
        }

        func run() throws {
            // In place, every GZFILE field of a full version starts with the store's directory:
            // refused before the spool is made.
            if inPlace, let why = Record.problem(withDirectory: try FileConfig(url: StoreURL(store)).directory) {
                throw ConfigError("\(Diagnostics.printable(store)): \(why)")
            }
            let spool = try self.spool.open()
            let (store, layout) = try StoreRegistry.open(store, settings: storeOptions.settings())
            try PullGet(store: store, layout: layout, spool: spool, inPlace: inPlace)
                .run(input: RecordInput(arguments: records), output: RecordWriter(), diagnostics: output.diagnostics("wsp-pull"))
        }
    }

    struct Verify: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Download versions and check them as a restore would; restore nothing.",
            discussion: """
                Checks every version (at or before --before) of the metrics that match the GLOBs:
                the gzip stream (CRC and length), the SHA-256 in the key (the .sha1 beside a
                legacy version), and the whisper header against the file's size. Without GLOBs,
                reads records from stdin: metric names (every version of each), or version records
                with their KEY (wsp-pull list output: exactly those versions). An argument that
                contains a TAB is such a record, so `wsp-pull list --all STORE '*' | xargs -d '\\n'
                -P 4 -n 100 wsp-pull verify STORE` checks in parallel.

                OUTPUT RECORDS (one per checked version)
                  METRIC  TIME  HASH  KEY  SIZE  STATUS
                  STATUS: ok or bad. Each bad version is also reported on stderr as
                  "wsp-pull: METRIC: KEY: reason", and the exit status is 1. A version whose
                  content is damaged is marked bad in the store (an empty KEY.bad beside it):
                  the next backup of that file stores it again and removes the damaged one.

                \(exitStatusHelp)
                """)

        @Option(help: ArgumentHelp("Only versions at or before this time.", valueName: "date"))
        var before: String?

        @Option(help: ArgumentHelp("Check each version with this probability, in percent (a partial scrub).", valueName: "percent"))
        var sample: Double = 100

        @OptionGroup(title: "Spool") var spool: SpoolOptions
        @OptionGroup(title: "Store") var storeOptions: StoreOptions
        @OptionGroup(title: "Output") var output: OutputOptions

        @Argument(help: ArgumentHelp("Store URL.", valueName: "store"))
        var store: String

        @Argument(help: ArgumentHelp("Metric globs, or records (an argument with a TAB); default: records from stdin.", valueName: "glob"))
        var globs: [String] = []

        func validate() throws {
            guard sample > 0 && sample <= 100 else { throw ValidationError("--sample must be more than 0 and at most 100") }
        }

        func run() throws {
            var cutoff: Int64? = nil
            if let before {
                cutoff = try Timestamp.option(before, "--before")
            }
            let records = globs.filter { $0.contains("\t") }
            let patterns = try MetricGlob.parseArguments(globs.filter { !$0.contains("\t") })
            if !records.isEmpty && !patterns.isEmpty { throw ValidationError("give GLOBs or records, not both") }
            let spool = try self.spool.open()
            let (store, layout) = try StoreRegistry.open(store, settings: storeOptions.settings())
            try PullVerify(store: store, layout: layout, spool: spool, before: cutoff, samplePercent: sample)
                .run(globs: patterns, input: patterns.isEmpty ? RecordInput(arguments: records) : nil,
                     output: RecordWriter(), diagnostics: output.diagnostics("wsp-pull"))
        }
    }
}

ToolMain.run(WspPull.self, name: "wsp-pull")
