import ArgumentParser
import WhisperBackup

struct WspSnap: RecordArguments {
    static let configuration = CommandConfiguration(
        commandName: "wsp-snap",
        abstract: "Take consistent, hashed, gzipped snapshots of whisper files into a bounded spool.",
        discussion: """
            For each file record: open, flock(LOCK_SH) within --lock-timeout, check the path still
            names the locked file, read, re-read if a write raced the read, check the whisper
            header, SHA-256 the bytes, gzip them into the spool. The spool never holds more than
            --spool-max bytes: snap waits while the next stage drains it.

            INPUT RECORDS (stdin, or one per argument)
              METRIC  PATH          (PATH may be omitted with --root)

            OUTPUT RECORDS
              METRIC  TIME  SHA256  SIZE  GZFILE  STAT  [STORED  STOREID]
              TIME is the snapshot time (UTC, 20261127T035433Z); SIZE the uncompressed bytes;
              GZFILE the gzip file in the spool; STAT the file's ino:dev:mtime:ctime:size for
              wsp-push's state (- when the file was written too recently to trust its stat).
              With --state, a file whose stat matches its last push is not read: GZFILE is -,
              TIME and SHA256 name the stored version, STORED is its object size and STOREID
              the id of the store the state vouches for (wsp-push checks it is its store),
              and BASE follows when that version is a delta.
              METRIC  TIME  SHA256  SIZE  GZFILE  STAT  -  -  BASE
              A delta version: GZFILE holds the gzipped pages that differ from the
              version BASE (BASETIME.BASESHA256), SIZE is still the whole file's size.

            DELTA VERSIONS
              With --state (and not --full), a changed file whose stored version the
              state vouches for is written as a delta against it when its changed 4 KiB
              pages hold at most half of the file, its name is at most 600 bytes, and
              the chain since the last full version stays shorter than --full-every.
              The page hashes of every snapshot are kept in STATE/pageindex, one file
              per parent of whisper directories.

            STATE
              Before trusting the state, wsp-snap lists the store once per run (the processes
              of a run share it through WSP_RUN_ID, or else the processes one xargs starts
              share it; on file://, each process checks the entries of its own records) and
              drops every entry whose version is not
              the metric's newest in the store, with the size stored, and unmarked by
              wsp-pull verify; those files are read again, and stderr says which and why.

            EXAMPLE
              wsp-find --root /srv/whisper | wsp-snap --spool /var/tmp/wsp | wsp-push file:///backups

            \(exitStatusHelp)
            """,
        version: wspVersion)

    @OptionGroup(title: "Spool") var spool: SpoolOptions

    @Option(help: ArgumentHelp("Whisper root, to take records that carry only METRIC.", valueName: "dir"))
    var root: String?

    @Option(help: ArgumentHelp("Seconds to wait for a shared lock on a file.", valueName: "s"))
    var lockTimeout: Double = 30

    // 2: libdeflate's greedy parser; its lazy ones (5 and up) cost 20 to 40% more time for
    // 2% less output on whisper data, its level 1 7% more output (docs/decisions.md).
    @Option(help: ArgumentHelp("gzip level, 1 (fast) to 12 (small).", valueName: "n"))
    var level: Int32 = 2

    @Option(help: ArgumentHelp("State directory of the store these snapshots go to (the same as wsp-push --state): files unchanged since their last push are not read.", valueName: "dir"))
    var state: String?

    @Flag(help: "Read every file, ignoring the state, and store every changed one as a full version.")
    var full = false

    @Option(help: ArgumentHelp("With --state, a full version at least every K versions of a metric (the others are deltas); 1 makes every version full.", valueName: "K"))
    var fullEvery: Int = Snap.defaultFullEvery

    @OptionGroup(title: "Output") var output: OutputOptions

    @Argument(help: ArgumentHelp("Records (default: read from stdin).", valueName: "record"))
    var records: [String] = []

    func validate() throws {
        guard (1...12).contains(level) else { throw ValidationError("--level must be 1 to 12") }
        guard fullEvery >= 1 else { throw ValidationError("--full-every must be 1 or more") }
    }

    func run() throws {
        // Checked here, not in validate(), so that a bad value is one line `wsp-snap: ...`.
        try Seconds.check(lockTimeout, option: "--lock-timeout")
        let diagnostics = output.diagnostics("wsp-snap")
        var snap = Snap(spool: try spool.open(), root: root, lockTimeout: lockTimeout, level: level)
        snap.fullEvery = fullEvery
        snap.pageIndexes = state.map { PageIndexes(stateDir: $0) }   // with --full too: the next run can make a delta
        if let state, !full {
            do {
                let trusted = try Snap.trustedState(dir: state, diagnostics: diagnostics)
                (snap.state, snap.byMetric) = (trusted?.state, trusted?.byMetric)
            } catch {
                throw ConfigError("--state \(state): \(error)")
            }
        }
        try snap.run(input: RecordInput(arguments: records), output: RecordWriter(), diagnostics: diagnostics)
    }
}

ToolMain.run(WspSnap.self, name: "wsp-snap")
