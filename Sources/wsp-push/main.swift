import ArgumentParser
import WhisperBackup

struct WspPush: RecordArguments {
    static let configuration = CommandConfiguration(
        commandName: "wsp-push",
        abstract: "Upload snapshots the store lacks (dedup against each metric's newest version).",
        discussion: """
            Stores each snapshot as STORE-PREFIX METRIC/TIME.SHA256.wsp.gz unless the metric's
            newest stored version has the same SHA-256, then removes the spool file.

            INPUT RECORDS (stdin, or one per argument)
              METRIC  TIME  SHA256  SIZE  GZFILE  [STAT  [STORED  STOREID  [BASE]]]    (wsp-snap's output)
              GZFILE - means wsp-snap found the file unchanged since its last push: it is
              reported unchanged without any request to the store, provided STOREID is this
              store's id (a state written against another store is refused).
              BASE (BASETIME.BASESHA256) makes GZFILE a delta version: it is stored under
              METRIC/TIME.SHA256.BASE.wspd.gz if the version BASE is in the store and not
              marked damaged; otherwise the record fails and the state forgets the metric,
              so that the next run stores it full.

            OUTPUT RECORDS
              METRIC  TIME  SHA256  KEY  SIZE  STATUS
              STATUS is stored, unchanged (TIME and KEY then name the stored version that
              already holds this content) or would-store (--dry-run). SIZE is the object's bytes.

            A record that fails is reported and its spool file removed (the next run snaps the
            file again). After 5 records in a row failed through the retries, the store is taken
            for down: the remaining records fail at once, without a request.

            DAMAGED VERSIONS
              A newest version that wsp-pull verify found damaged (or that --full finds damaged)
              is never deduplicated against: the content is stored again as a new version, and
              the damaged object is removed once the new one is in place.

            EXAMPLE
              wsp-find --root /srv/whisper | wsp-snap --spool /var/tmp/wsp \\
                | xargs -d '\\n' -P 4 -n 50 wsp-push file:///backups/node1

            \(exitStatusHelp)
            """,
        version: wspVersion)

    @OptionGroup(title: "Store") var storeOptions: StoreOptions

    @Flag(help: "Report what would be stored; store nothing (the spool files are consumed as by a real push).")
    var dryRun = false

    @Option(help: ArgumentHelp("State directory for this store: records what was stored so the next wsp-snap --state skips unchanged files.", valueName: "dir"))
    var state: String?

    @Flag(help: "Download and check each metric's newest version before deduplicating against it; a damaged one is marked bad and stored again.")
    var full = false

    @Option(help: ArgumentHelp("Uploads of a batch of records kept in flight at once, each on a connection of its own (S3, Swift).", valueName: "n"))
    var connections = ConcurrentPuts.defaultWidth

    @OptionGroup(title: "Output") var output: OutputOptions

    @Argument(help: ArgumentHelp("Store URL: file:///dir, s3://bucket/prefix, swift://container/prefix.", valueName: "store"))
    var store: String

    @Argument(help: ArgumentHelp("Records (default: read from stdin).", valueName: "record"))
    var records: [String] = []

    func validate() throws {
        guard (1...ConcurrentPuts.maxWidth).contains(connections) else {
            throw ValidationError("--connections \(connections): not a number from 1 to \(ConcurrentPuts.maxWidth)")
        }
    }

    func run() throws {
        let diagnostics = output.diagnostics("wsp-push")
        var settings = storeOptions.settings(dryRun: dryRun)
        settings.connections = connections
        var backupState: BackupState? = nil
        let opened: Store, layout: StoreLayout
        do {
            (opened, layout) = try StoreRegistry.open(store, settings: settings)
            if let state, !dryRun {
                do {
                    let s = try BackupState(dir: state)
                    try Push.claim(state: s, store: opened, layout: layout, url: store, settings: settings)
                    backupState = s
                } catch let e as StoreError where e.kind == .transient {
                    throw e   // the store is down: a failed run (exit 1), not a configuration error
                } catch let e as Errno {
                    // The state's filesystem failed (full, read-only): the backup goes on without
                    // it, and the next run reads every file again.
                    diagnostics.warn("--state \(state): cannot be written (\(e)); storing without it, the next run reads every file again")
                } catch {
                    throw ConfigError("--state \(state): \(error)")
                }
            }
        } catch {
            // These records will not be stored: their spool files go back to the spool, so
            // the stage before never waits on the room they hold.
            Push.discardSpoolFiles(of: records.map { Record(line: $0.hasSuffix("\n") ? Substring($0.dropLast()) : Substring($0)) })
            throw error
        }
        var push = Push(store: opened, layout: layout, dryRun: dryRun, state: backupState)
        push.checkNewest = full
        try push.run(input: RecordInput(arguments: records), output: RecordWriter(), diagnostics: diagnostics)
    }
}

ToolMain.run(WspPush.self, name: "wsp-push")
