import ArgumentParser
import WhisperBackup

struct WhisperBackupCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "whisper-backup",
        abstract: "Back up, restore, purge or list a Graphite whisper tree with the original whisper-backup's options.",
        discussion: """
            MODES: backup, restore, purge, list (whisper-restore is whisper-backup restore).
            BACKEND: disk (directory -b), s3 (bucket -b, optional REGION), gcs, swift
            (container -b), noop (read and hash, store nothing), or a store URL
            (file:///dir, s3://b/p, swift://c/p). Credentials come from the
            environment, never from the command line.

            A backup runs wsp-find | wsp-snap | wsp-push, then wsp-prune (retention and
            purge); a restore wsp-pull list | wsp-pull get | wsp-merge. The option
            --print-pipeline prints the run as a shell pipeline.

            Examples:
              whisper-backup -b /var/backups/graphite --create-bucket backup disk
              whisper-backup -b graphite-backups -r 7 -x 45 backup s3 eu-west-1
              whisper-restore -b /var/backups/graphite -m 'servers.web*' disk
              whisper-backup -b /var/backups/graphite list disk

            EXAMPLE (the pipeline of a backup)
              wsp-find --root /srv/whisper | xargs -n K wsp-snap \\
                | xargs -n K wsp-push file:///b | cut -f1 | wsp-prune --keep 5 file:///b

            MONITORING (backup, restore and purge runs, failed ones included)
            The option --metrics-file FILE writes the run's figures as a node_exporter
            textfile, atomically; --carbon HOST:PORT sends them to carbon's plaintext
            port, under --carbon-prefix (default whisper-backup.HOSTNAME). Samples
            are whisper_backup_NAME{mode="MODE"}, carbon paths PREFIX.MODE.CNAME:
              last_run_timestamp_seconds      when the run ended (last_run)
              last_success_timestamp_seconds  when a run all succeeded (last_success)
              last_run_success                1 if every metric succeeded (success)
              last_run_exit_code              the exit status (exit_code)
              last_run_duration_seconds       seconds from taking the lock (duration)
              last_run_failures               metrics that failed (failures)
              last_run_versions_removed       versions removed (versions_removed)
              last_run_files{status=S}        files by outcome (files.S)
              last_run_bytes{direction=D}     bytes (bytes.read, bytes.written)

            FILES
              /etc/default/whisper-backup      settings of whisper-backup.service
              /var/log/whisper-backup.log      log (--logfile)
              /var/lock/whisper-backup.lock    lock of a run (--lockfile)
              /var/tmp/whisper-backup.success  stamp of a run that succeeded (--stampfile)

            EXIT STATUS
              0 every metric succeeded; 1 some failed, the store could not be reached
              or the lock was held; 2 bad usage or configuration, nothing done;
              130/143 stopped by SIGINT/SIGTERM.
            """,
        version: "whisper-backup \(wspVersion)")

    @Argument(help: "backup|restore|purge|list BACKEND [REGION]",
              completion: .custom { words, index, prefix in CompletionWords.positional(words, index: index, prefix: prefix) })
    var words: [String] = []
    @Option(name: .shortAndLong, help: "Whisper root to back up or restore into.") var prefix = "/opt/graphite/storage/whisper"
    @Option(name: [.customShort("f"), .long], help: "Parallel processes per stage.") var processes = 4
    @Option(name: .shortAndLong, help: "Versions to keep per metric (default 5; backup).") var retention: Int?
    @Option(name: [.customShort("x"), .long], parsing: .unconditional, help: "Days to keep backups of metrics gone from disk; -1 disables (default 45).") var purge: Int?
    @Flag(name: .shortAndLong, help: "Change nothing: dry run of every stage.") var noop = false
    @Option(name: .shortAndLong, help: "Bucket, container or (disk) directory.") var bucket = "graphite-backups"
    @Option(name: .shortAndLong, help: "Metric globs, comma-separated.") var metrics = "*"
    @Option(name: [.customShort("c"), .long], help: "Restore the newest version at or before DATE.") var date: String?
    @Option(name: .customLong("storage-path"), help: "Key prefix inside the bucket.") var storagePath: String?
    @Flag(name: .shortAndLong, help: "Progress of every stage and the commands run.") var debug = false
    @Flag(name: .shortAndLong, help: "Only warnings and errors on stderr.") var quiet = false
    @Flag(name: .customLong("nolog"), help: "Do not write the log file.") var nolog = false
    @Option(help: "Log file.") var logfile = "/var/log/whisper-backup.log"
    @Flag(help: "Log to syslog (local3) as well.") var syslog = false
    @Flag(name: .customLong("nolock"), help: "Do not take the lock file.") var nolock = false
    @Option(help: "Lock file.") var lockfile = "/var/lock/whisper-backup.lock"
    @Option(help: "Seconds to wait for the lock.") var locktimeout = 90
    @Option(help: "Sleep a random 0..S seconds first.") var splay = 0
    @Flag(name: .customLong("nostamp"), help: "Do not touch the success stamp file.") var nostamp = false
    @Option(help: "Success stamp file.") var stampfile = "/var/tmp/whisper-backup.success"
    @Option(help: "Spool directory (default: a new one in the work directory; for a restore, in /dev/shm when it is a tmpfs with room for twice --spool-max).") var spool: String?
    @Option(name: .customLong("spool-max"), help: "Spool bound; batch sizes are chosen so it cannot stall.") var spoolMax = "1G"
    @Option(help: "S3 endpoint URL.") var endpoint: String?
    @Option(help: "Uploads each wsp-push keeps in flight at once, S3 and Swift (default 4).") var connections: Int?
    @Option(help: "State directory of this store.") var state: String?
    @Flag(help: "Read every file, ignoring the state, and store every changed one full.") var full = false
    @Option(help: "gzip level of wsp-snap, 1 (fast) to 12 (small) (default 2).") var level: Int?
    @Option(name: .customLong("full-every"), help: "With a state: a full version at least every K versions of a metric, deltas between (default 10; 1: always full).") var fullEvery: Int?
    @Flag(name: [.customLong("create-bucket"), .customLong("create-container")], help: "Create the bucket if missing.") var createBucket = false
    @Flag(help: "Let a purge remove more than half of the store's metrics.") var force = false
    @Option(name: .customLong("metrics-file"), help: "node_exporter textfile for the run's figures.") var metricsFile: String?
    @Option(help: "carbon HOST:PORT for the run's figures.") var carbon: String?
    @Option(name: .customLong("carbon-prefix"), help: "Metric path prefix for --carbon.") var carbonPrefix: String?
    @Flag(help: "Files done / total, rate and ETA on stderr (default: when stderr is a terminal).") var progress = false
    @Flag(name: .customLong("no-progress"), help: "No progress display.") var noProgress = false
    @Flag(name: .customLong("print-pipeline"), help: "Print the run's wsp-* pipeline and exit.") var printPipeline = false

    func run() throws {
        var s = RunSettings()
        s.positional = words
        s.defaultMode = system_getenv("WSP_WRAPPER_MODE")
        s.prefix = prefix; s.processes = processes; s.retention = retention; s.purge = purge; s.noop = noop
        s.bucket = bucket; s.metrics = metrics; s.date = date; s.storagePath = storagePath; s.debug = debug
        s.quiet = quiet; s.nolog = nolog || printPipeline; s.logfile = logfile; s.syslog = syslog
        s.nolock = nolock || printPipeline; s.lockfile = lockfile; s.locktimeout = locktimeout
        s.splay = printPipeline ? 0 : splay; s.nostamp = nostamp; s.stampfile = stampfile; s.spool = spool
        s.spoolMax = spoolMax; s.endpoint = endpoint; s.connections = connections; s.state = state; s.full = full; s.fullEvery = fullEvery; s.level = level; s.createBucket = createBucket
        s.force = force; s.metricsFile = metricsFile; s.carbon = carbon; s.carbonPrefix = carbonPrefix
        s.progress = noProgress ? false : progress ? true : nil; s.printPipeline = printPipeline
        let plan = try RunPlan(s)
        Orchestrator.findTools(executable: CommandLine.arguments[0])
        let rc = Orchestrator(plan: plan).run()
        if rc != 0 { throw ExitCode(rc) }
    }
}

ToolMain.run(WhisperBackupCommand.self, name: "whisper-backup")
