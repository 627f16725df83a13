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
            for record in input.records(until: output) {
                let metric = record.metric
                // Records of one metric often come in a run (wsp-push output); skip repeats.
                if !seen.insert(metric).inserted { continue }
                if seen.count > 100_000 { seen = [metric] }
                do {
                    try MetricName.validate(metric)
                    try prune(StoreListing.metric(metric, in: store, layout: layout), output: output, diagnostics: diagnostics)
                } catch {
                    diagnostics.fail(metric, error)
                }
            }
        } else {
            try StoreListing.forEachMetric(in: store, layout: layout, prefix: layout.prefix) { objects in
                if Signals.stopRequested || output.closed { return }
                do {
                    try prune(objects, output: output, diagnostics: diagnostics)
                } catch {
                    diagnostics.fail(objects.metric, error)
                }
            }
        }
        try diagnostics.finish()
    }

    /// Deletes all but the newest `keep` versions, and the Python tool's leftovers (a
    /// `.wsp.gz` without its `.sha1` or the reverse) older than the oldest version kept.
    func prune(_ objects: MetricObjects, output: RecordWriter, diagnostics: Diagnostics) throws {
        let versions = objects.versions   // oldest first
        let doomed = versions.count > keep ? Array(versions.prefix(versions.count - keep)) : []
        let leftovers = versions.isEmpty ? [] : objects.legacyLeftovers(olderThan: versions[doomed.count].time, layout: layout)
        guard !doomed.isEmpty || !leftovers.isEmpty else {
            diagnostics.done("kept")
            return
        }
        let metric = objects.metric
        var keys = doomed.map(\.key)
        keys += doomed.filter(\.legacy).map { layout.legacyHashKey($0.key) }
        keys += leftovers
        keys += doomed.compactMap { objects.bad[$0.key] } + objects.strayBadKeys
        let failures = try store.delete(keys)
        let failed = Dictionary(failures.map { ($0.key, $0.error) }, uniquingKeysWith: { a, _ in a })
        for v in doomed {
            if let e = failed[v.key] {
                diagnostics.fail(metric, "delete \(v.key): \(e)")
            } else {
                output.write(Record(v.recordFields + [dryRun ? "would-delete" : "deleted"]))
                diagnostics.bytesOut += v.size
            }
        }
        for k in leftovers {
            if let e = failed[k] { diagnostics.fail(metric, "delete \(k): \(e)") }
        }
        if !leftovers.isEmpty {
            diagnostics.warn("\(metric): \(dryRun ? "would remove" : "removed") \(leftovers.count) leftover object(s) of an interrupted legacy upload or delete")
        }
        diagnostics.done("pruned")
    }
}
