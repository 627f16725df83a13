/// `wsp-prune --keep N`: for each metric named by a record (or every metric in the store),
/// deletes all but the N newest versions. Writes `METRIC TIME HASH KEY SIZE STATUS` for each
/// version it deletes (STATUS `deleted` or `would-delete`).
public struct Prune {
    public var store: Store
    public var layout: StoreLayout
    public var keep: Int
    public var dryRun: Bool

    public init(store: Store, layout: StoreLayout, keep: Int, dryRun: Bool) {
        self.store = store
        self.layout = layout
        self.keep = keep
        self.dryRun = dryRun
    }

    public func run(input: RecordInput?, output: RecordWriter, diagnostics: Diagnostics) throws {
        if let input {
            var seen = Set<String>()
            for record in input {
                if Signals.stopRequested || output.closed { break }
                let metric = record.metric
                // Records of one metric often come in a run (wsp-push output); skip repeats.
                if !seen.insert(metric).inserted { continue }
                if seen.count > 100_000 { seen = [metric] }
                do {
                    try MetricName.validate(metric)
                    try prune(Versions.all(of: metric, in: store, layout: layout), output: output, diagnostics: diagnostics)
                } catch {
                    diagnostics.fail(metric, error)
                }
            }
        } else {
            var current: String? = nil
            var versions: [StoredVersion] = []
            try store.list(prefix: layout.prefix) { obj in
                guard var v = layout.parse(obj.key) else { return }
                v.size = obj.size
                if v.metric != current {
                    if !versions.isEmpty { try prune(versions.sorted(by: Versions.isOlder), output: output, diagnostics: diagnostics) }
                    versions.removeAll(keepingCapacity: true)
                    current = v.metric
                }
                versions.append(v)
            }
            if !versions.isEmpty { try prune(versions.sorted(by: Versions.isOlder), output: output, diagnostics: diagnostics) }
        }
        try diagnostics.finish()
    }

    /// `versions` oldest first.
    func prune(_ versions: [StoredVersion], output: RecordWriter, diagnostics: Diagnostics) throws {
        guard versions.count > keep, let metric = versions.first?.metric else {
            diagnostics.done("kept")
            return
        }
        let doomed = Array(versions.prefix(versions.count - keep))
        var keys = doomed.map(\.key)
        keys += doomed.filter(\.legacy).map { layout.legacyHashKey($0.key) }
        let failures = dryRun ? [] : try store.delete(keys)
        let failed = Dictionary(failures.map { ($0.key, $0.error) }, uniquingKeysWith: { a, _ in a })
        for v in doomed {
            if let e = failed[v.key] {
                diagnostics.fail(metric, "delete \(v.key): \(e)")
            } else {
                output.write(Record(v.recordFields + [dryRun ? "would-delete" : "deleted"]))
                diagnostics.bytesOut += v.size
            }
        }
        diagnostics.done("pruned")
    }
}
