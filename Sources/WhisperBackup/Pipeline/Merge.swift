#if canImport(Glibc)
import Glibc
#endif

/// `wsp-merge`: for each fetched record `METRIC TIME HASH GZFILE`, verifies the version, then
/// creates the target under the root atomically (temp file in the target directory, linked
/// into place only if nothing appeared meanwhile). Writes `METRIC STATUS PATH DETAIL`.
public struct Merge {
    public var root: String
    public var dryRun: Bool
    public var keepSpool: Bool

    public init(root: String, dryRun: Bool, keepSpool: Bool = false) {
        self.root = root
        self.dryRun = dryRun
        self.keepSpool = keepSpool
    }

    public func run(input: RecordInput, output: RecordWriter, diagnostics: Diagnostics) throws {
        let realRoot: String
        do {
            if !dryRun { try Path.makeDirectories(root) }
            realRoot = try system_realpath(root)
        } catch {
            throw ConfigError("--root \(root): \(error)")
        }
        for record in input {
            if Signals.stopRequested || output.closed { break }
            do {
                let (status, path, detail) = try mergeOne(record, realRoot: realRoot, diagnostics: diagnostics)
                output.write(record.metric, status, path, detail)
                diagnostics.done(status)
            } catch {
                diagnostics.fail(record.metric, error)
                output.write(record.metric, "failed", "", Diagnostics.printable("\(error)"))
            }
        }
        try diagnostics.finish()
    }

    func mergeOne(_ record: Record, realRoot: String, diagnostics: Diagnostics) throws -> (String, String, String) {
        let metric = record.metric
        try MetricName.validate(metric)
        guard let hash = record[2] else { throw RecordError("fetched record needs HASH in field 3") }
        guard let gzPath = record[3] else { throw RecordError("fetched record needs GZFILE in field 4") }
        let target = Path.join(realRoot, MetricName.relativePath(metric))
        defer { if !keepSpool && !dryRun { _ = try? system_unlink(gzPath) } }
        let (bytes, _) = try VersionCheck.verify(gzPath: gzPath, expectedHash: hash)
        diagnostics.bytesIn += Int64(bytes.count)

        if Path.exists(target) {
            return ("exists", target, "target exists; left untouched")
        }
        if dryRun { return ("would-create", target, "\(bytes.count)") }
        let dir = Path.directory(of: target)
        do {
            try Path.makeDirectories(under: realRoot, String(dir.dropFirst(realRoot.count)))
        } catch let e as Errno {
            throw RecordError(e.path ?? e.description)
        }
        do {
            try AtomicFile.write(target, placement: .createOnly) { fd in
                try bytes.withUnsafeBytes { try fd.writeAll($0) }
            }
        } catch Errno.fileExists {
            return ("exists", target, "target appeared meanwhile; left untouched")
        }
        diagnostics.bytesOut += Int64(bytes.count)
        return ("created", target, "\(bytes.count)")
    }
}
