/// `wsp-find`: walks a whisper root and writes `METRIC PATH` for every `.wsp` file whose
/// metric matches a glob. Directories that cannot hold a match are not entered; symlinks
/// are followed only to files inside the root; directory symlinks are not followed (loops).
/// A file whose path does not map one-to-one to its metric name (a `.` inside a file or
/// directory name: `a/b.c.wsp` and `a/b/c.wsp` are both `a.b.c`) or whose name is not valid
/// UTF-8 is refused with a line naming it, never stored under a name it cannot restore to.
public struct Find {
    public var root: String
    public var globs: [MetricGlob]

    public init(root: String, globs: [MetricGlob]) {
        self.root = root
        self.globs = globs
    }

    public func run(output: RecordWriter, diagnostics: Diagnostics) throws {
        defer { output.flush() }   // the records held (RecordWriter.hold)
        let realRoot: String
        do {
            realRoot = try system_realpath(root)
            guard try system_stat(realRoot).isDirectory else { throw ConfigError("--root \(root): not a directory") }
        } catch let e as ConfigError {
            throw e
        } catch {
            throw ConfigError("--root \(root): \(error)")
        }
        // Every PATH field starts with it.
        if let why = Record.problem(withDirectory: realRoot) { throw ConfigError("--root \(Diagnostics.printable(root)): \(why)") }
        try walk(dir: realRoot, relDir: "", metricPrefix: "", refusal: nil, realRoot: realRoot, output: output, diagnostics: diagnostics)
        try diagnostics.finish()
    }

    private func couldMatch(_ prefix: String) -> Bool { globs.contains { $0.couldMatch(prefix: prefix) } }
    private func matches(_ metric: String) -> Bool { globs.contains { $0.matches(metric) } }

    /// Why a file at `relPath` (metric `metric`) cannot be backed up under its name, or nil.
    /// `refusal` is the reason inherited from a directory above it.
    private func refusal(name: DirectoryEntry, relPath: String, metric: String, inherited: String?, realRoot: String) -> String? {
        if let inherited { return inherited }
        if !name.isUTF8 { return Find.notUTF8(relPath) }
        if name.name.droppingLast(bytes: 4).contains(byte: UInt8(ascii: ".")) {
            let other = MetricName.relativePath(metric)
            let exists = (try? system_lstat(Path.join(realRoot, other))) != nil
            return "\(relPath): a '.' in a file name does not map back to one path: metric \(metric) restores to \(other)"
                + (exists ? ", which is another file on disk" : "") + "; not backed up (rename it)"
        }
        return nil
    }

    static func notUTF8(_ relPath: String) -> String {
        "\(relPath): name is not valid UTF-8 (records and store keys are UTF-8); not backed up (rename it)"
    }

    private func walk(dir: String, relDir: String, metricPrefix: String, refusal inherited: String?, realRoot: String,
                      output: RecordWriter, diagnostics: Diagnostics) throws {
        if Signals.stopRequested || output.closed { return }
        let entries: [DirectoryEntry]
        do {
            entries = try system_readdir(dir).sorted { $0.name.utf8.lexicographicallyPrecedes($1.name.utf8) }
        } catch {
            diagnostics.fail(metricPrefix.isEmpty ? "(root)" : String(metricPrefix.dropLast()), "cannot list \(dir): \(error)")
            return
        }
        for e in entries {
            if Signals.stopRequested || output.closed { return }
            if e.name.hasPrefix(bytes: ".") { continue }   // temp files, hidden directories
            let path = Path.join(dir, e.name)
            let relPath = relDir.isEmpty ? e.name : relDir + "/" + e.name
            var kind = e.kind
            if kind == .unknown {
                guard let st = try? system_lstat(path) else { continue }
                kind = st.isDirectory ? .directory : st.isRegularFile ? .file : st.isSymlink ? .symlink : .other
            }
            switch kind {
            case .directory:
                let prefix = metricPrefix + e.name + "."
                if couldMatch(prefix) {
                    var refusal = inherited
                    if refusal == nil && !e.isUTF8 { refusal = Find.notUTF8(relPath + "/") }
                    if refusal == nil && e.name.contains(byte: UInt8(ascii: ".")) {
                        refusal = "\(relPath)/: a '.' in a directory name does not map back to one path: its files would restore under "
                            + e.name.split(byte: UInt8(ascii: ".")).joined(separator: "/")
                            + "/; not backed up (rename it)"
                    }
                    try walk(dir: path, relDir: relPath, metricPrefix: prefix, refusal: refusal, realRoot: realRoot,
                             output: output, diagnostics: diagnostics)
                }
            case .file, .symlink:
                guard e.name.hasSuffix(bytes: ".wsp"), e.name.utf8.count > 4 else { continue }
                let metric = metricPrefix + e.name.droppingLast(bytes: 4)
                guard matches(metric) else { continue }
                if kind == .symlink {
                    guard let target = try? system_realpath(path),
                          target.hasPrefix(bytes: realRoot + "/"),
                          (try? system_stat(target))?.isRegularFile == true else {
                        diagnostics.skipped += 1
                        diagnostics.warn("\(metric): skipped: symlink leads outside the root or to no file")
                        continue
                    }
                }
                do {
                    try MetricName.validate(metric)
                } catch {
                    diagnostics.fail(metric, error)
                    continue
                }
                if let reason = refusal(name: e, relPath: relPath, metric: metric, inherited: inherited, realRoot: realRoot) {
                    diagnostics.fail(metric, reason)
                    continue
                }
                output.hold(metric, path)
                diagnostics.done("found")
            default:
                continue
            }
        }
    }
}
