/// `wsp-find`: walks a whisper root and writes `METRIC PATH` for every `.wsp` file whose
/// metric matches a glob. Directories that cannot hold a match are not entered; symlinks
/// are followed only to files inside the root; directory symlinks are not followed (loops).
public struct Find {
    public var root: String
    public var globs: [MetricGlob]

    public init(root: String, globs: [MetricGlob]) {
        self.root = root
        self.globs = globs
    }

    public func run(output: RecordWriter, diagnostics: Diagnostics) throws {
        let realRoot: String
        do {
            realRoot = try system_realpath(root)
            guard try system_stat(realRoot).isDirectory else { throw ConfigError("--root \(root): not a directory") }
        } catch let e as ConfigError {
            throw e
        } catch {
            throw ConfigError("--root \(root): \(error)")
        }
        try walk(dir: realRoot, metricPrefix: "", realRoot: realRoot, output: output, diagnostics: diagnostics)
        try diagnostics.finish()
    }

    private func couldMatch(_ prefix: String) -> Bool { globs.contains { $0.couldMatch(prefix: prefix) } }
    private func matches(_ metric: String) -> Bool { globs.contains { $0.matches(metric) } }

    private func walk(dir: String, metricPrefix: String, realRoot: String, output: RecordWriter, diagnostics: Diagnostics) throws {
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
            if e.name.hasPrefix(".") { continue }   // temp files, hidden directories
            let path = Path.join(dir, e.name)
            var kind = e.kind
            if kind == .unknown {
                guard let st = try? system_lstat(path) else { continue }
                kind = st.isDirectory ? .directory : st.isRegularFile ? .file : st.isSymlink ? .symlink : .other
            }
            switch kind {
            case .directory:
                let prefix = metricPrefix + e.name + "."
                if couldMatch(prefix) {
                    try walk(dir: path, metricPrefix: prefix, realRoot: realRoot, output: output, diagnostics: diagnostics)
                }
            case .file, .symlink:
                guard e.name.hasSuffix(".wsp"), e.name.count > 4 else { continue }
                let metric = metricPrefix + String(e.name.dropLast(4))
                guard matches(metric) else { continue }
                if kind == .symlink {
                    guard let target = try? system_realpath(path),
                          target.hasPrefix(realRoot + "/"),
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
                output.write(metric, path)
                diagnostics.done("found")
            default:
                continue
            }
        }
    }
}
