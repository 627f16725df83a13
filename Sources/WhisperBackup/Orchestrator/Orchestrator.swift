#if canImport(Glibc)
import Glibc
#endif

/// Runs a `RunPlan`: takes the lock, runs the mode's stages, counts what they did, writes the
/// summary, the stamp and the figures. Returns the exit status.
public final class Orchestrator {
    let plan: RunPlan
    var s: RunSettings { plan.settings }
    var log: RunLog!
    var stages: StageGroup!
    var work = ""
    var figures = RunFigures()
    var started = system_now()
    var progressOn = false
    var ttyErr = false

    public init(plan: RunPlan) { self.plan = plan }

    func say(_ text: String) { log.line("whisper-backup: \(text)") }
    func elapsed() -> String {
        let e = system_now() - started
        var buf = [CChar](repeating: 0, count: 32)
        _ = withVaList([e]) { vsnprintf(&buf, 32, "%.1f", $0) }
        return String(cString: buf)
    }

    /// Puts the wsp-* tools on PATH: $WSP_BIN, else beside this executable, else the build tree.
    public static func findTools(executable: String) {
        let here = Path.directory(of: (try? system_realpath(executable)) ?? executable)
        var dirs: [String] = []
        if let b = system_getenv("WSP_BIN"), !b.isEmpty { dirs.append(b) }
        dirs += [here, "\(here)/../.build/release", "\(here)/../.build/debug"]
        for d in dirs where system_access("\(d)/wsp-find", X_OK) {
            system_setenv("PATH", "\(d):\(system_getenv("PATH") ?? "/usr/bin:/bin")")
            return
        }
    }

    public func run() -> Int32 {
        if s.printPipeline {
            let spool = s.spool ?? "\(system_getenv("TMPDIR") ?? "/var/tmp")/wsp-spool"
            let cmds = StageCommands(plan: plan, spool: spool, progress: [])
            system_write_stdout(cmds.pipeline)
            return 0
        }
        if let dir = plan.createDirectory {
            do { try Path.makeDirectories(dir) } catch {
                system_write_stderr("whisper-backup: \(dir): \(error)\n"); return 2
            }
        }
        // Logging.
        var logFD: CInt? = nil
        if !s.nolog {
            try? Path.makeDirectories(Path.directory(of: s.logfile))
            do { logFD = try system_open(s.logfile, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC) } catch {
                system_write_stderr("whisper-backup: cannot write log file \(s.logfile) (use --logfile FILE or --nolog)\n")
                return 2
            }
        }
        log = RunLog(quiet: s.quiet, file: logFD, syslog: s.syslog)
        ttyErr = system_isatty(2)
        progressOn = s.progress ?? (ttyErr && !s.quiet && !s.debug)
        if plan.mode == .list || plan.mode == .purge { progressOn = false }
        log.clear = progressOn && ttyErr
        guard let pipe = try? system_pipe() else { return 2 }
        // One check of the state against the store per run, shared by the run's processes.
        if plan.state != nil { system_setenv(StateCheck.runVariable, RunPlan.runID()) }
        system_becomeSubreaper()
        stages = StageGroup(log: log, logPipe: pipe)

        var template = Array("\(system_getenv("TMPDIR") ?? "/var/tmp")/whisper-backup.XXXXXX".utf8CString)
        guard mkdtemp(&template) != nil else { say("cannot create a work directory in $TMPDIR"); return 2 }
        work = String(cString: template)
        var rc: Int32
        do {
            rc = try runLocked()
        } catch let stop as RunStopped {
            rc = 128 + stop.signal
        } catch is Interrupted {
            rc = 128 + Signals.pending
        } catch let e as ExitStatus {
            rc = e.code
        } catch {
            say("\(error)")
            rc = 2
        }
        stages.stop()
        // A stop that came after the last stage still ends the run as stopped.
        if Signals.stopRequested && rc < 128 { rc = 128 + Signals.pending }
        if progressOn && ttyErr { system_write_stderr("\r\u{1b}[K") }
        if plan.mode != .list { report(rc) }
        removeTree(work)
        if let memorySpool { removeTree(memorySpool) }
        log.flush()
        return rc
    }

    struct ExitStatus: Error { var code: Int32 }

    func runLocked() throws -> Int32 {
        if s.splay > 0 && plan.mode != .list {
            let wait = Double(Int.random(in: 0...s.splay))
            if s.debug { say("sleeping \(Int(wait)) s (splay \(s.splay))") }
            let end = system_monotonic() + wait
            while system_monotonic() < end {
                if Signals.stopRequested { throw Interrupted() }
                system_sleep(min(0.2, end - system_monotonic()))
            }
        }
        var lockFD: FileDescriptor? = nil
        if !s.nolock && plan.mode != .list {
            guard let fd = try? FileDescriptor.open(s.lockfile, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC) else {
                say("cannot open lock file \(s.lockfile) (use --lockfile FILE or --nolock)")
                return 2
            }
            lockFD = fd
            do { try FileLock.lock(fd, .exclusive, timeout: Double(s.locktimeout)) } catch is LockTimeout {
                say("lock \(s.lockfile) is held by another run; gave up after \(s.locktimeout) s (raise --locktimeout, or see who holds it: fuser -v \(s.lockfile))")
                return 1
            }
        }
        defer { lockFD?.close() }
        started = system_now()
        switch plan.mode {
        case .backup: return try backup()
        case .restore: return try restore()
        case .purge: return try purge()
        case .list: return try list()
        }
    }

    /// A restore's spool in memory, when it fits there (`MemorySpool`).
    var memorySpool: String? = nil
    var spool: String { s.spool ?? memorySpool ?? "\(work)/spool" }
    var progressOption: [String] { s.quiet ? ["--quiet"] : s.debug ? ["--progress"] : [] }
    var commands: StageCommands { StageCommands(plan: plan, spool: spool, progress: progressOption) }

    func open(_ path: String, write: Bool) throws -> CInt {
        try system_open(path, (write ? O_WRONLY | O_CREAT | O_TRUNC : O_RDONLY) | O_CLOEXEC)
    }

    /// Runs one stage, stdin from a file (or /dev/null), stdout to a file; its exit status.
    func runStage(_ argv: [String], input: String = "/dev/null", output: String, append: Bool = false) throws -> Int32 {
        if s.debug { say("running: \(StageCommands.quote(argv))") }
        let i = try open(input, write: false)
        let o = try system_open(output, O_WRONLY | O_CREAT | O_CLOEXEC | (append ? O_APPEND : O_TRUNC))
        defer { system_close(i); system_close(o) }
        do { try stages.start(argv, stdin: i, stdout: o) } catch { say("cannot start \(argv[0]): \(error)"); throw ExitStatus(code: 2) }
        return try stages.wait()[0]
    }

    /// Writes a work file.
    func write(_ name: String, _ content: String) throws {
        let fd = try open("\(work)/\(name)", write: true)
        defer { system_close(fd) }
        try FileDescriptor(rawValue: fd, path: "\(work)/\(name)").writeAll(content)
    }

    func text(_ name: String) -> String { (try? readWhole("\(work)/\(name)")) ?? "" }

    func batch(largest: Int64, count: Int) throws -> String {
        guard let k = BatchSize.records(spoolMax: plan.spoolMax, largest: largest, count: count, processes: s.processes) else {
            say("--spool-max \(s.spoolMax) cannot hold two of the largest files (\(largest) bytes); raise it")
            throw ExitStatus(code: 2)
        }
        return String(k)
    }

    /// Two batched stages joined by a pipe (the first one's records also copied to `copy`).
    func pipeline(_ first: [String], _ second: [String], input: String, copy: String?, output: String,
                  progress: RunProgress?) throws -> [Int32] {
        let i = try open("\(work)/\(input)", write: false)
        let o = try open("\(work)/\(output)", write: true)
        let p1 = try system_pipe()
        var fds = [i, o, p1.read, p1.write]
        defer { fds.forEach { system_close($0) } }
        do {
            if let copy {
                let p2 = try system_pipe()
                fds += [p2.read, p2.write]
                try stages.start(first, stdin: i, stdout: p1.write)
                try stages.start(["tee", "\(work)/\(copy)"], stdin: p1.read, stdout: p2.write)
                try stages.start(second, stdin: p2.read, stdout: o)
            } else {
                try stages.start(first, stdin: i, stdout: p1.write)
                try stages.start(second, stdin: p1.read, stdout: o)
            }
        } catch { say("cannot start a stage: \(error)"); throw ExitStatus(code: 2) }
        for fd in fds.dropFirst(2) { system_close(fd) }
        fds = [i, o]
        return try stages.wait { progress?.tick() }
    }

    func backup() throws -> Int32 {
        guard (try? system_stat(s.prefix))?.isDirectory == true else {
            say("prefix \(s.prefix) is not a directory"); return 2
        }
        var rc: Int32 = 0
        let c = commands
        let foundOK = try runStage(c.find, output: "\(work)/files") == 0
        if !foundOK { rc = 1 }
        let files = text("files")
        let lines = files.split(separator: "\n")
        var largest: Int64 = 0
        for l in lines {
            let f = l.split(separator: "\t", omittingEmptySubsequences: false)
            if f.count > 1, let st = try? system_stat(String(f[1])) { largest = max(largest, Int64(st.st_size)) }
        }
        let k = try batch(largest: largest, count: lines.count)
        if s.debug { say("\(lines.count) files; batches of \(k); spool \(spool) (max \(s.spoolMax))") }
        if plan.backend == "noop" {
            let st = try runStage(c.batched(k, c.noopSnap), input: "\(work)/files", output: "\(work)/snaps")
            if st != 0 { rc = 1 }
            for l in text("snaps").split(separator: "\n") {
                let f = l.split(separator: "\t", omittingEmptySubsequences: false)
                if f.count > 4 { _ = try? system_unlink(String(f[4])) }
            }
            figures = RunFigures.noopBackup(files: files, snaps: text("snaps"))
            summary(figures.summary(.backup, noop: true, noopBackend: true, elapsed: elapsed()), rc: rc)
            return rc
        }
        // A store that cannot be reached stops the run here, before anything is read
        // (exit 2: configuration, e.g. credentials; 1: the store is down).
        if !plan.noop {
            let st = try runStage(c.pushCheck, output: "/dev/null")
            if st != 0 { return st }
        }
        let progress = progressOn ? RunProgress(self, total: lines.count, done: "pushed", bytes: "snaps", column: 3, what: "files") : nil
        let sts = try pipeline(c.batched(k, c.snap),
                               c.batched(k, c.push), input: "files", copy: "snaps", output: "pushed", progress: progress)
        if sts.contains(where: { $0 != 0 }) { rc = 1 }
        // Retention for the metrics that got a new version.
        let changed = text("pushed").split(separator: "\n").compactMap { l -> Substring? in
            let f = l.split(separator: "\t", omittingEmptySubsequences: false)
            return f.count > 5 && (f[5] == "stored" || f[5] == "would-store") ? f[0] : nil
        }
        try write("changed", changed.map { "\($0)\n" }.joined())
        try write("pruned", "")
        if !changed.isEmpty {
            // Under xargs like the other stages: each process lists its records' metrics a
            // batch at a time, and P of them keep P listings in flight.
            let k = String(max(1, min(4000, (changed.count + s.processes - 1) / s.processes)))
            if try runStage(c.batched(k, c.retention), input: "\(work)/changed", output: "\(work)/pruned") != 0 { rc = 1 }
        }
        if plan.purgeDays >= 0 && !foundOK {
            // The purge needs the complete listing: a walk that failed would make metrics look gone.
            say("purge skipped: the listing of \(s.prefix) is incomplete (see above)")
        } else if plan.purgeDays >= 0 {
            try write("names", lines.map { "\($0.split(separator: "\t", omittingEmptySubsequences: false)[0])\n" }.joined())
            if try runStage(c.purge, input: "\(work)/names", output: "\(work)/pruned", append: true) != 0 { rc = 1 }
        }
        figures = RunFigures.backup(files: files, snaps: text("snaps"), pushed: text("pushed"), pruned: text("pruned"))
        summary(figures.summary(.backup, noop: plan.noop, elapsed: elapsed()), rc: rc)
        return rc
    }

    func restore() throws -> Int32 {
        var rc: Int32 = 0
        if s.spool == nil { memorySpool = MemorySpool.create(spoolMax: plan.spoolMax) }
        if s.debug { say("spool \(spool) (max \(s.spoolMax))") }
        let c = commands
        let st = try runStage(c.pullList, output: "\(work)/versions")
        if st == 2 { return 2 }
        if st != 0 { rc = 1 }
        let versions = text("versions")
        let lines = versions.split(separator: "\n")
        var largest: Int64 = 0
        for l in lines {
            let f = l.split(separator: "\t", omittingEmptySubsequences: false)
            if f.count > 4, let b = Int64(f[4]) { largest = max(largest, b) }
        }
        let k = try batch(largest: largest, count: lines.count)
        if !plan.noop { try? Path.makeDirectories(s.prefix) }
        let progress = progressOn ? RunProgress(self, total: lines.count, done: "merged", bytes: "versions", column: 4, what: "versions") : nil
        try write("merged", "")
        let sts = try pipeline(c.batched(k, c.pullGet), c.batched(k, c.merge), input: "versions", copy: nil, output: "merged", progress: progress)
        if sts.contains(where: { $0 != 0 }) { rc = 1 }
        figures = RunFigures.restore(versions: versions, merged: text("merged"))
        summary(figures.summary(.restore, noop: plan.noop, elapsed: elapsed()), rc: rc)
        return rc
    }

    func purge() throws -> Int32 {
        guard plan.purgeDays >= 0 else { say("purge is disabled (-x -1)"); return 0 }
        let c = commands
        if try runStage(c.find, output: "\(work)/files") != 0 {
            say("purge skipped: the listing of \(s.prefix) is incomplete (see above)"); return 1
        }
        let names = text("files").split(separator: "\n").map { "\($0.split(separator: "\t", omittingEmptySubsequences: false)[0])\n" }.joined()
        try write("names", names)
        var rc: Int32 = 0
        let st = try runStage(c.purge, input: "\(work)/names", output: "\(work)/pruned")
        if st == 2 { return 2 }
        if st != 0 { rc = 1 }
        figures.versionsRemoved = text("pruned").split(separator: "\n").count
        summary(figures.summary(.purge, noop: plan.noop, elapsed: elapsed()), rc: rc)
        return rc
    }

    func list() throws -> Int32 {
        let st = try runStage(commands.listAll, output: "\(work)/versions")
        system_write_stdout(Listing.format(text("versions")))
        return st
    }

    /// The one-line summary: always in the log; on stderr too unless -q and all went well
    /// (so cron mails only the runs that need a look).
    func summary(_ line: String, rc: Int32) {
        if s.quiet && rc == 0 && figures.failed == 0 { log.line(RunLog.logOnly + "whisper-backup: " + line) } else { say(line) }
    }

    /// The stamp, the textfile and carbon, whatever the exit.
    func report(_ rc: Int32) {
        if rc == 0 && !s.nostamp && !plan.noop && plan.mode != .list {
            if let fd = try? system_open(s.stampfile, O_WRONLY | O_CREAT | O_CLOEXEC) {
                system_close(fd)
                utimensat(AT_FDCWD, s.stampfile, nil, 0)
            } else { say("cannot touch stamp file \(s.stampfile)") }
        }
        guard s.metricsFile != nil || s.carbon != nil else { return }
        let end = Int64(system_now())
        let samples = figures.samples(plan.mode, exitCode: rc, end: end, duration: elapsed())
        if let f = s.metricsFile {
            do { try Textfile.write(f, mode: plan.mode, samples: samples) } catch { say("cannot write metrics file \(f)") }
        }
        if let host = plan.carbonHost, let port = plan.carbonPort {
            let lines = Carbon.lines(prefix: plan.carbonPrefix, mode: plan.mode, samples: samples, time: end)
            if let why = Carbon.send(lines, host: host, port: port) { say("cannot send figures to carbon at \(s.carbon!): \(why)") }
        }
    }

    func removeTree(_ path: String) {
        guard let st = try? system_lstat(path) else { return }
        if st.isDirectory && !st.isSymlink {
            for e in (try? system_readdir(path)) ?? [] { removeTree("\(path)/\(e.name)") }
            _ = try? system_rmdir(path)
        } else { _ = try? system_unlink(path) }
    }
}
