import XCTest
@testable import WhisperBackup

final class OrchestratorTests: XCTestCase {
    func settings(_ words: String..., mode: String? = nil, _ edit: (inout RunSettings) -> Void = { _ in }) -> RunSettings {
        var s = RunSettings()
        s.positional = words
        s.defaultMode = mode
        s.state = "/st"
        edit(&s)
        return s
    }

    func plan(_ s: RunSettings) throws -> RunPlan {
        try RunPlan(s, env: { _ in nil }, hostname: "node1.example.net", writable: { _ in true }, absolute: { $0.hasPrefix("/") ? $0 : "/cwd/" + $0 })
    }

    func usage(_ s: RunSettings, _ said: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try plan(s), file: file, line: line) { e in
            XCTAssertTrue("\(e)".contains(said), "\(e)", file: file, line: line)
        }
    }

    func testModeFromTheFirstWordElseTheWrappers() throws {
        XCTAssertEqual(try plan(settings("list", "disk", mode: "restore")).mode, .list)
        XCTAssertEqual(try plan(settings("disk", mode: "restore")).mode, .restore)
        usage(settings("disk"), "say what to do")
        usage(settings(mode: "backup"), "name a storage backend")
        usage(settings("backup", "disk", "r", "x"), "unexpected arguments: x")
    }

    func testOptionsThatMeanNothingForTheModeAreUsageErrors() {
        usage(settings("backup", "disk") { $0.date = "2026-01-01" }, "-c/--date is for restore and list")
        usage(settings("restore", "disk") { $0.retention = 3 }, "-r/--retention is for backup")
        usage(settings("list", "disk") { $0.purge = 3 }, "-x/--purge is for backup and purge")
        usage(settings("purge", "disk") { $0.retention = 3 }, "-r/--retention is for backup")
        usage(settings("backup", "disk", "us-east-1"), "a REGION makes no sense")
        usage(settings("backup", "swift", "RegionOne"), "OS_REGION_NAME")
        usage(settings("backup", "file:///x") { $0.storagePath = "p" }, "put the prefix in the store URL")
        usage(settings("restore", "noop"), "only makes sense for backup")
        usage(settings("backup", "bogus"), "unknown backend 'bogus'")
        usage(settings("backup", "disk") { $0.purge = -2 }, "--purge takes DAYS or -1")
        usage(settings("backup", "disk") { $0.spoolMax = "lots" }, "--spool-max lots: not a byte count")
        usage(settings("list", "disk") { $0.metricsFile = "/t/x.prom" }, "not list")
        usage(settings("backup", "disk") { $0.metricsFile = "/t/x.txt" }, "*.prom")
        usage(settings("backup", "disk") { $0.carbon = "nohost" }, "HOST:PORT")
        usage(settings("backup", "disk") { $0.carbonPrefix = "a..b" }, "--carbon-prefix")
    }

    func testStoreURLsFromTheBackend() throws {
        XCTAssertEqual(try plan(settings("backup", "disk") { $0.bucket = "/b"; $0.storagePath = "/node1/" }).store, "file:///b/node1/")
        let s3 = try plan(settings("backup", "s3", "eu-west-1") { $0.storagePath = "/x" })
        XCTAssertEqual(s3.store, "s3://graphite-backups//x/")
        XCTAssertEqual(s3.storeOptions, ["--region", "eu-west-1"])
        let gcs = try plan(settings("backup", "gcs") { $0.createBucket = true })
        XCTAssertEqual(gcs.storeOptions, ["--region", "auto", "--endpoint", "https://storage.googleapis.com", "--create-bucket"])
        XCTAssertEqual(try plan(settings("backup", "swift")).store, "swift://graphite-backups/")
        let noop = try plan(settings("backup", "noop"))
        XCTAssertNil(noop.store)
        XCTAssertTrue(noop.noop)
        // A dry run creates nothing, not even the bucket it was asked to create.
        XCTAssertNil(try plan(settings("backup", "disk") { $0.bucket = "/b"; $0.createBucket = true; $0.noop = true }).createDirectory)
        XCTAssertEqual(try plan(settings("backup", "disk") { $0.bucket = "/b"; $0.createBucket = true }).createDirectory, "/b/")
    }

    /// A restore's spool goes to memory only on a tmpfs with room for twice the bound and the
    /// emptied files the spool may keep (256 MiB).
    func testAMemorySpoolOnlyWhereItFits() {
        let keep: Int64 = 256 << 20
        let tmpfs = MemorySpool.tmpfsMagic, ext4: Int64 = 0xEF53
        XCTAssertTrue(MemorySpool.fits(filesystemType: tmpfs, available: 2 * (1 << 30) + keep, spoolMax: 1 << 30))
        XCTAssertFalse(MemorySpool.fits(filesystemType: tmpfs, available: 2 * (1 << 30) + keep - 1, spoolMax: 1 << 30))
        XCTAssertFalse(MemorySpool.fits(filesystemType: ext4, available: 1 << 40, spoolMax: 1 << 20))
        XCTAssertFalse(MemorySpool.fits(filesystemType: tmpfs, available: .max, spoolMax: .max / 2))
    }

    func testStateNaming() {
        XCTAssertEqual(StateName.name(of: "s3://b/p x/é"), "s3___b_p_x___")
        let env = ["WSP_STATE_HOME": "/h", "HOME": "/home/u"]
        XCTAssertEqual(StateName.directory(for: "file:///b/", env: { env[$0] }, writable: { _ in false }), "/h/file____b_")
        XCTAssertEqual(StateName.directory(for: "file:///b/", env: { $0 == "HOME" ? "/home/u" : nil }, writable: { $0 == "/var/lib" }),
                       "/var/lib/whisper-backup/state/file____b_")
        XCTAssertEqual(StateName.directory(for: "file:///b/", env: { $0 == "HOME" ? "/home/u" : nil }, writable: { _ in false }),
                       "/home/u/.local/state/whisper-backup/file____b_")
    }

    func testGlobsSplitOnCommasOutsideBraces() {
        XCTAssertEqual(GlobList.split("servers.host00{0,1}.cpu.*,*.mem.free"), ["servers.host00{0,1}.cpu.*", "*.mem.free"])
        XCTAssertEqual(GlobList.split(""), ["*"])
    }

    func testBatchSizeHoldsTheSpool() {
        // 1 MiB files in a 7 MiB spool: six of them, minus one in flight.
        XCTAssertEqual(BatchSize.records(spoolMax: 7 << 20, largest: 1 << 20, count: 100_000, processes: 4), 5)
        // Room for many: about four batches per process, at least 200, at most 4000, evened out
        // to a multiple of the processes.
        XCTAssertEqual(BatchSize.records(spoolMax: 1 << 30, largest: 1000, count: 100, processes: 4), 25)   // each process gets records
        XCTAssertEqual(BatchSize.records(spoolMax: 1 << 30, largest: 1000, count: 600, processes: 16), 38)
        // 15 batches of 200 would leave one process a batch alone at the end: 16 of 188.
        XCTAssertEqual(BatchSize.records(spoolMax: 1 << 30, largest: 1000, count: 3000, processes: 4), 188)
        XCTAssertEqual(BatchSize.records(spoolMax: 1 << 30, largest: 1000, count: 100_000, processes: 2), 3847)   // 26, not 25 of 4000
        XCTAssertEqual(BatchSize.records(spoolMax: 1 << 30, largest: 1000, count: 32_000, processes: 4), 2000)
        XCTAssertEqual(BatchSize.records(spoolMax: 1 << 40, largest: 1000, count: 1_000_000, processes: 1), 4000)
        XCTAssertNil(BatchSize.records(spoolMax: 1 << 20, largest: 1 << 20, count: 10, processes: 4))
    }

    func testStagesPerMode() throws {
        let p = try plan(settings("backup", "disk") { $0.bucket = "/b"; $0.metrics = "a.*,b.{c,d}"; $0.prefix = "/w"; $0.force = true })
        let c = StageCommands(plan: p, spool: "/sp", progress: [])
        XCTAssertEqual(c.find, ["wsp-find", "--root", "/w", "a.*", "b.{c,d}"])
        // A subset run purges only its own metrics, and never one whose file exists.
        XCTAssertEqual(c.purge, ["wsp-prune", "--root", "/w", "--force", "--metrics", "a.*", "--metrics", "b.{c,d}",
                                 "--state", "/st", "--gone-after", "45", "file:///b/"])
        XCTAssertEqual(c.push, ["wsp-push", "--state", "/st", "file:///b/"])
        XCTAssertEqual(c.snap, ["wsp-snap", "--state", "/st", "--spool", "/sp", "--spool-max", "1073741824"])
        let full = StageCommands(plan: try plan(settings("backup", "disk") { $0.full = true }), spool: "/sp", progress: [])
        XCTAssertEqual(full.push.prefix(4), ["wsp-push", "--state", "/st", "--full"])
        // --full-every goes to wsp-snap only, and only where a state is used.
        let every = StageCommands(plan: try plan(settings("backup", "disk") { $0.fullEvery = 3 }), spool: "/sp", progress: [])
        XCTAssertEqual(every.snap.prefix(5), ["wsp-snap", "--state", "/st", "--full-every", "3"])
        XCTAssertFalse(every.push.contains("--full-every"))
        XCTAssertTrue(every.pipeline.contains("wsp-snap --state /st --full-every 3 --spool"), every.pipeline)
        let dryEvery = StageCommands(plan: try plan(settings("backup", "disk") { $0.fullEvery = 3; $0.noop = true }), spool: "/sp", progress: [])
        XCTAssertFalse(dryEvery.snap.contains("--full-every"))
        XCTAssertThrowsError(try plan(settings("backup", "disk") { $0.fullEvery = 0 })) { XCTAssert("\($0)".contains("--full-every")) }
        // --level goes to wsp-snap, --connections to wsp-push; each only when given.
        let tuned = StageCommands(plan: try plan(settings("backup", "disk") { $0.level = 6; $0.connections = 8 }), spool: "/sp", progress: [])
        XCTAssertEqual(tuned.snap, ["wsp-snap", "--state", "/st", "--level", "6", "--spool", "/sp", "--spool-max", "1073741824"])
        XCTAssertEqual(tuned.push, ["wsp-push", "--state", "/st", "--connections", "8", "file:///cwd/graphite-backups/"])
        XCTAssertTrue(tuned.pipeline.contains("wsp-snap --state /st --level 6 --spool"), tuned.pipeline)
        XCTAssertTrue(tuned.pipeline.contains("wsp-push --state /st --connections 8 file://"), tuned.pipeline)
        XCTAssertFalse(c.snap.contains("--level") || c.push.contains("--connections"))
        XCTAssertThrowsError(try plan(settings("backup", "disk") { $0.level = 13 })) { XCTAssert("\($0)".contains("--level 13")) }
        XCTAssertThrowsError(try plan(settings("backup", "disk") { $0.connections = 0 })) { XCTAssert("\($0)".contains("--connections 0")) }
        XCTAssertEqual(c.batched("7", ["wsp-push"]), ["xargs", "-d", "\n", "-r", "-P", "4", "-s", "1000000", "-n", "7", "wsp-push"])
        // -n: every changing stage dry, and no state used (its check would rewrite journals).
        let dry = StageCommands(plan: try plan(settings("backup", "disk") { $0.noop = true }), spool: "/sp", progress: [])
        XCTAssertEqual(dry.push, ["wsp-push", "--dry-run", "file:///cwd/graphite-backups/"])
        XCTAssertEqual(dry.snap, ["wsp-snap", "--spool", "/sp", "--spool-max", "1073741824"])
        XCTAssertTrue(dry.retention.contains("--dry-run") && dry.purge.contains("--dry-run"))
        let r = StageCommands(plan: try plan(settings("restore", "disk") { $0.date = "2026-01-01"; $0.noop = true }), spool: "/sp", progress: ["--quiet"])
        XCTAssertEqual(r.pullList, ["wsp-pull", "list", "--quiet", "--before", "2026-01-01", "file:///cwd/graphite-backups/", "*"])
        XCTAssertEqual(r.merge, ["wsp-merge", "--quiet", "--dry-run", "--root", "/opt/graphite/storage/whisper"])
    }

    func testPrintedPipeline() throws {
        let p = try plan(settings("backup", "disk") { $0.bucket = "/b"; $0.prefix = "/w"; $0.metrics = "a b.*" })
        let text = StageCommands(plan: p, spool: "/sp", progress: []).pipeline
        XCTAssertTrue(text.hasPrefix("wsp-find --root /w 'a b.*' \\\n  | xargs -d '\\n' -r -P 4 -s 1000000 -n K wsp-snap --state /st"), text)
        XCTAssertTrue(text.contains("wsp-prune --gone-after 45 --root /w --metrics 'a b.*' file:///b/\n"), text)
        XCTAssertEqual(StageCommands.quote(["it's", "a"]), "'it'\\''s' a")
        let off = try plan(settings("purge", "disk") { $0.purge = -1 })
        XCTAssertEqual(StageCommands(plan: off, spool: "/sp", progress: []).pipeline, "# purge is disabled (-x -1)\n")
    }

    func testSummaryCountsTheRecords() {
        let files = "a\t/w/a.wsp\nb\t/w/b.wsp\nc\t/w/c.wsp\n"
        let snaps = "a\t1\th\t100\t/sp/a\nb\t1\th\t50\t-\n"
        let pushed = "a\t1\th\tk\t40\tstored\nb\t1\th\tk\t0\tunchanged\n"
        let f = RunFigures.backup(files: files, snaps: snaps, pushed: pushed, pruned: "a\tt\th\tk\t1\tdeleted\n")
        XCTAssertEqual([f.seen, f.stored, f.unchanged, f.failed, f.versionsRemoved], [3, 1, 1, 1, 1])
        XCTAssertEqual([f.bytesRead, f.bytesWritten], [100, 40])
        XCTAssertEqual(f.summary(.backup, noop: false, elapsed: "1.5"),
                       "backup: 3 files seen, 1 stored, 1 unchanged, 1 failed, 1 versions removed, 100 bytes read, 40 bytes written, 1.5 s")
        XCTAssertTrue(f.summary(.backup, noop: true, elapsed: "1.5").contains("would store 1,"))
        let r = RunFigures.restore(versions: "a\t1\n b\t1\n c\t1\n", merged: "a\tcreated\tx\t10\nb\twould-fill\tx\t5\n")
        XCTAssertEqual([r.seen, r.created, r.filled, r.failed], [3, 1, 1, 1])
        XCTAssertEqual(r.bytesWritten, 10)
    }

    func testTextfileKeepsOtherModesAndTheLastSuccess() {
        var ok = RunFigures()
        ok.seen = 2; ok.stored = 2
        let first = Textfile.merge(old: "", mode: .backup, samples: ok.samples(.backup, exitCode: 0, end: 100, duration: "1.0"))
        XCTAssertTrue(first.contains("# HELP whisper_backup_last_run_files Files of the last run by outcome.\n# TYPE whisper_backup_last_run_files gauge\n"))
        XCTAssertTrue(first.contains("whisper_backup_last_run_files{mode=\"backup\",status=\"stored\"} 2\n"))
        let failed = Textfile.merge(old: first, mode: .backup, samples: ok.samples(.backup, exitCode: 1, end: 200, duration: "1.0"))
        XCTAssertTrue(failed.contains("whisper_backup_last_success_timestamp_seconds{mode=\"backup\"} 100\n"))
        XCTAssertTrue(failed.contains("whisper_backup_last_run_timestamp_seconds{mode=\"backup\"} 200\n"))
        let both = Textfile.merge(old: failed, mode: .restore, samples: RunFigures().samples(.restore, exitCode: 0, end: 300, duration: "1.0"))
        XCTAssertTrue(both.contains("whisper_backup_last_run_success{mode=\"backup\"} 0\n"))
        XCTAssertTrue(both.contains("whisper_backup_last_run_success{mode=\"restore\"} 1\n"))
        XCTAssertEqual(both.components(separatedBy: "# HELP whisper_backup_last_run_success ").count, 2)
    }

    func testCarbonPaths() {
        var f = RunFigures()
        f.seen = 7
        let text = Carbon.lines(prefix: "wb.node1", mode: .backup, samples: f.samples(.backup, exitCode: 0, end: 5, duration: "2.0"), time: 5)
        for line in ["wb.node1.backup.last_run 5 5", "wb.node1.backup.last_success 5 5", "wb.node1.backup.success 1 5",
                     "wb.node1.backup.exit_code 0 5", "wb.node1.backup.duration 2.0 5", "wb.node1.backup.files.seen 7 5",
                     "wb.node1.backup.bytes.read 0 5", "wb.node1.backup.versions_removed 0 5"] {
            XCTAssertTrue(text.contains(line + "\n"), line)
        }
        XCTAssertEqual(CarbonAddress.parse("[::1]:2003")?.host, "::1")
        XCTAssertNil(CarbonAddress.parse("host:x"))
        XCTAssertEqual(try plan(settings("backup", "disk")).carbonPrefix, "whisper-backup.node1")
    }

    func testLogFiltering() {
        XCTAssertTrue(RunLog.shows("wsp-snap: servers.x: too short", quiet: true))
        XCTAssertTrue(RunLog.shows("whisper-backup: backup: 1 files seen, 1 failed", quiet: true))
        XCTAssertFalse(RunLog.shows("wsp-push: 3 records", quiet: true))
        XCTAssertTrue(RunLog.shows("wsp-push: 3 records", quiet: false))
        XCTAssertTrue(RunLog.shows("wsp-push: connection error", quiet: true))
        XCTAssertEqual(RunLog.priority("wsp-snap: servers.x: too short"), LOG_ERR)
        XCTAssertEqual(RunLog.priority("whisper-backup: backup: a: b"), LOG_INFO)
        XCTAssertNotNil(RunLog.timestamp(0).range(of: #"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d{4}$"#, options: .regularExpression))
    }

    func testListingAndCompletion() {
        XCTAssertEqual(Listing.format("a\t20260101T000000Z\th1\tk\t1\na\t20260102T000000Z\th2\tk\t1\nb\t20260101T000000Z\th3\tk\t1\n"),
                       "a\n\tDate: 20260101T000000Z\th1\n\tDate: 20260102T000000Z\th2\nb\n\tDate: 20260101T000000Z\th3\n\n3 compressed whisper databases found.\n")
        XCTAssertEqual(Listing.format(""), "\nNo backups found.\n")
        XCTAssertEqual(CompletionWords.positional(["whisper-backup", "-q", ""], index: 2, prefix: "", wrapperMode: nil), CompletionWords.modes)
        XCTAssertEqual(CompletionWords.positional(["whisper-backup", "backup", "s"], index: 2, prefix: "s", wrapperMode: nil), ["s3", "swift", "s3://", "swift://"])
        XCTAssertEqual(CompletionWords.positional(["whisper-restore", ""], index: 1, prefix: "", wrapperMode: "restore"), CompletionWords.backends)
    }
}
