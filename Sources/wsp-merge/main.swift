import ArgumentParser
import WhisperBackup

struct WspMerge: RecordArguments {
    static let configuration = CommandConfiguration(
        commandName: "wsp-merge",
        abstract: "Verify fetched versions, then create missing whisper files or backfill existing ones.",
        discussion: """
            Checks each fetched file (gzip CRC, the SHA-256 or legacy SHA-1 named by the \
            record, the whisper header) before touching the target.

            A missing target is written to a temp file in its directory and linked into \
            place only if nothing appeared there meanwhile.

            An existing target is backfilled in place under flock(LOCK_EX), waiting up to \
            --lock-timeout. Only its empty slots are written, within each archive's \
            retention before --now (taken once per run): from the backup's archive of the \
            same resolution, or, where the backup has no archive of that resolution for \
            that time, aggregated from finer backup data with the target's method and \
            xFilesFactor. Coarser data never fills finer slots; no existing point, zeros \
            included, is changed or re-aggregated. Each slot is written value first, then \
            timestamp, so an interrupted merge leaves a valid file.

            A target that is not valid whisper (or is go-carbon compressed) is left \
            untouched and reported. Nothing is ever overwritten by a copy. The spool file \
            is removed.

            INPUT RECORDS (stdin, or one per argument)
              METRIC  TIME  HASH  GZFILE        (wsp-pull get's output)

            OUTPUT RECORDS
              METRIC  STATUS  PATH  DETAIL
              created       DETAIL: bytes written (the target was missing)
              filled        DETAIL: points written into the existing target
              unchanged     DETAIL: 0 (nothing in the backup fills an empty slot)
              failed        DETAIL: the reason (also on stderr); target untouched
              would-create  DETAIL: bytes (--dry-run)
              would-fill    DETAIL: points that would be written (--dry-run)

            EXAMPLE
              wsp-pull list file:///backups/node1 '*' \\
                | wsp-pull get --spool /var/tmp/wsp file:///backups/node1 \\
                | wsp-merge --root /srv/whisper

            \(exitStatusHelp)
            """,
        version: wspVersion)

    @Option(help: ArgumentHelp("Whisper root to restore into.", valueName: "dir"))
    var root: String

    @Option(help: ArgumentHelp("The time the archives' retention is counted back from, once for the whole run (default: the current time). 2026-11-01T12:00:00Z, 20261101T120000Z, @epoch.", valueName: "date"))
    var now: String?

    @Option(help: ArgumentHelp("Seconds to wait for the exclusive lock on an existing target.", valueName: "s"))
    var lockTimeout: Double = 30

    @Flag(help: "Verify and report what would be written; write nothing (the spool files are consumed as by a real merge; --keep-spool keeps them).")
    var dryRun = false

    @Flag(help: "Keep the spool files after merging.")
    var keepSpool = false

    @OptionGroup(title: "Output") var output: OutputOptions

    @Argument(help: ArgumentHelp("Records (default: read from stdin).", valueName: "record"))
    var records: [String] = []

    func validate() throws {
    }

    func run() throws {
        // Checked here, not in validate(), so that a bad value is one line `wsp-merge: ...`.
        if let now { _ = try Timestamp.option(now, "--now") }
        try Seconds.check(lockTimeout, option: "--lock-timeout")
        try Merge(root: root, dryRun: dryRun, keepSpool: keepSpool, now: now.flatMap(Timestamp.parse), lockTimeout: lockTimeout)
            .run(input: RecordInput(arguments: records), output: RecordWriter(), diagnostics: output.diagnostics("wsp-merge"))
    }
}

ToolMain.run(WspMerge.self, name: "wsp-merge")
