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

    /// Metrics listed together when records come from arguments.
    public static let batchSize = 256

    public func run(input: RecordInput?, output: RecordWriter, diagnostics: Diagnostics) throws {
        if let input {
            var seen = Set<[UInt8]>()   // by bytes: canonically equivalent names are two metrics
            var batch: [String] = []
            // Records from arguments (xargs) are listed a batch at a time (one listing of the
            // batch's range where the store lists ranges cheaply); from stdin one at a time.
            let limit = input.isBuffered ? Prune.batchSize : 1
            func pruneBatch() {
                let listed = batch.count > 1 ? try? StoreListing.metrics(batch, in: store, layout: layout) : nil
                for metric in batch where !Signals.stopRequested && !output.closed {
                    do {
                        try prune(listed?[Array(metric.utf8)] ?? StoreListing.metric(metric, in: store, layout: layout), output: output, diagnostics: diagnostics)
                    } catch {
                        diagnostics.fail(metric, error)
                    }
                }
                batch.removeAll(keepingCapacity: true)
            }
            for record in input.records(until: output) {
                let metric = record.metric
                // Records of one metric often come in a run (wsp-push output); skip repeats.
                if !seen.insert(Array(metric.utf8)).inserted { continue }
                if seen.count > 100_000 { seen = [Array(metric.utf8)] }
                do {
                    try MetricName.validate(metric)
                } catch {
                    diagnostics.fail(metric, error)
                    continue
                }
                batch.append(metric)
                if batch.count >= limit { pruneBatch() }
            }
            if !batch.isEmpty && !Signals.stopRequested { pruneBatch() }
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

    /// Deletes all but the newest `keep` versions and what they depend on, and the Python
    /// tool's leftovers (a `.wsp.gz` without its `.sha1` or the reverse) older than the
    /// oldest version kept.
    ///
    /// A kept delta version keeps its base, and the base's base, down to a full version
    /// (neither written nor counted). Deletes go in layers, dependents first: a version is
    /// deleted only once every version that depends on it is gone, so a delta whose delete
    /// failed keeps its base, and the store never holds a delta without its base.
    func prune(_ objects: MetricObjects, output: RecordWriter, diagnostics: Diagnostics) throws {
        let versions = objects.versions   // oldest first
        let newest = versions.suffix(keep)
        let chain = VersionChain(objects: objects, store: store, layout: layout, scratch: "")
        var kept = Set(newest.map(\.key))
        for v in newest { for d in chain.dependencies(of: v) { kept.insert(d.key) } }
        let doomed = versions.filter { !kept.contains($0.key) }
        let oldestKept = versions.first { kept.contains($0.key) }
        let leftovers = oldestKept.map { objects.legacyLeftovers(olderThan: $0.time, layout: layout) } ?? []
        guard !doomed.isEmpty || !leftovers.isEmpty else {
            diagnostics.done("kept")
            return
        }
        let metric = objects.metric
        // Doomed versions that doomed others depend on (by key: how many dependents are left).
        var dependents: [String: Int] = [:]
        var baseOf: [String: String] = [:]
        let doomedKeys = Set(doomed.map(\.key))
        for v in doomed {
            if let ref = v.base, let b = chain.base(ref), doomedKeys.contains(b.key) {
                dependents[b.key, default: 0] += 1
                baseOf[v.key] = b.key
            }
        }
        var pending = doomed
        var extra = leftovers + objects.strayBadKeys   // with the first layer
        var failed: [String: Error] = [:]
        while !pending.isEmpty {
            let layer = pending.filter { dependents[$0.key, default: 0] == 0 }
            pending = pending.filter { dependents[$0.key, default: 0] > 0 }
            if layer.isEmpty { break }   // cannot happen: bases are older than their deltas
            var keys = layer.map(\.key)
            keys += layer.filter(\.legacy).map { layout.legacyHashKey($0.key) }
            keys += layer.compactMap { objects.bad[$0.key] } + extra
            extra = []
            for f in try store.delete(keys) where failed[f.key] == nil { failed[f.key] = f.error }
            for v in layer where failed[v.key] == nil {
                if let b = baseOf[v.key] { dependents[b]! -= 1 }
            }
        }
        let held = Set(pending.map(\.key))   // not tried: a dependent's delete failed
        for v in doomed {
            if let e = failed[v.key] {
                diagnostics.fail(metric, "delete \(v.key): \(e)\(baseOf[v.key] == nil ? "" : "; the versions it is built on are kept")")
            } else if !held.contains(v.key) {
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
