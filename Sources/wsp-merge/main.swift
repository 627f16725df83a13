import ArgumentParser
import WhisperBackup

struct WspMerge: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "wsp-merge",
        abstract: "Verify fetched versions, then create missing whisper files atomically.",
        discussion: """
            Checks each fetched file (gzip CRC, the SHA-256 or legacy SHA-1 named by the record,
            the whisper header) before touching the target. A missing target is written to a
            temp file in its directory and linked into place only if nothing appeared there
            meanwhile. An existing target is never overwritten. The spool file is removed.

            INPUT RECORDS (stdin, or one per argument)
              METRIC  TIME  HASH  GZFILE        (wsp-pull get's output)

            OUTPUT RECORDS
              METRIC  STATUS  PATH  DETAIL
              STATUS: created (DETAIL: bytes), exists (left untouched), would-create (--dry-run),
              failed (DETAIL: the reason, also reported on stderr).

            EXAMPLE
              wsp-pull list file:///backups/node1 '*' | wsp-pull get --spool /var/tmp/wsp file:///backups/node1 \\
                | wsp-merge --root /srv/whisper

            \(exitStatusHelp)
            """,
        version: wspVersion)

    @Option(help: ArgumentHelp("Whisper root to restore into.", valueName: "dir"))
    var root: String

    @Flag(help: "Verify and report what would be written; write nothing and keep the spool files.")
    var dryRun = false

    @Flag(help: "Keep the spool files after merging.")
    var keepSpool = false

    @OptionGroup(title: "Output") var output: OutputOptions

    @Argument(help: ArgumentHelp("Records (default: read from stdin).", valueName: "record"))
    var records: [String] = []

    func run() throws {
        try Merge(root: root, dryRun: dryRun, keepSpool: keepSpool)
            .run(input: RecordInput(arguments: records), output: RecordWriter(), diagnostics: output.diagnostics("wsp-merge"))
    }
}

ToolMain.run(WspMerge.self, name: "wsp-merge")
