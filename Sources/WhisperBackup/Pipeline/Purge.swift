/// `wsp-prune --gone-after DAYS`: removes the versions of metrics that are gone from disk.
/// Reads the node's complete metric listing (wsp-find output) and lists the store once.
/// A metric missing from disk gets a marker object `METRIC/gone-since.TIME` the first time a
/// run sees it missing; its versions are deleted only DAYS after that time (not after its
/// last backup: an idle metric keeps its backups). A metric that reappears loses its marker.
/// The marker lives in the store, so a lost local state cannot shorten the wait. A purge that
/// would remove more than `maxShare` of the store's metrics refuses unless forced: an
/// unmounted volume looks like an empty tree.
public struct Purge {
    public var store: Store
    public var layout: StoreLayout
    public var goneAfterDays: Int
    public var now: Int64
    public var maxShare: Double
    public var force: Bool
    public var dryRun: Bool
    /// Only store metrics matching these are considered (the globs of the listing).
    public var globs: [MetricGlob]
    /// The whisper root the listing was made of: a metric whose file is there counts as on
    /// disk even when the listing lacks it (a listing made with other globs), so no run
    /// marks gone or purges a metric that exists.
    public var root: String? = nil
    /// The state of this store: what it vouches for a purged metric is dropped first, so a
    /// file that comes back unchanged is read and stored again.
    public var state: BackupState?

    public static let markerName = StoreLayout.markerName

    public init(store: Store, layout: StoreLayout, goneAfterDays: Int, now: Int64, maxShare: Double,
                force: Bool, dryRun: Bool, globs: [MetricGlob]) {
        self.store = store
        self.layout = layout
        self.goneAfterDays = goneAfterDays
        self.now = now
        self.maxShare = maxShare
        self.force = force
        self.dryRun = dryRun
        self.globs = globs
    }

    public func run(input: RecordInput, output: RecordWriter, diagnostics: Diagnostics) throws {
        // By bytes: canonically equivalent names are two metrics, two files on disk.
        var onDisk = Set<[UInt8]>()
        for record in input {
            if Signals.stopRequested { throw Interrupted() }
            onDisk.insert(Array(record.metric.utf8))
        }
        var total = 0, marked = 0, unmarked = 0, unlisted = 0
        var doomed: [MetricObjects] = []
        let cutoff = now - Int64(goneAfterDays) * 86400
        try StoreListing.forEachMetric(in: store, layout: layout, prefix: layout.prefix,
                                       include: { m in globs.isEmpty || globs.contains { $0.matches(m) } }) { entry in
            if Signals.stopRequested { throw Interrupted() }
            if entry.isEmpty { return }
            total += 1
            var present = onDisk.contains(Array(entry.metric.utf8))
            if !present, let root, Path.exists(Path.join(root, MetricName.relativePath(entry.metric))) {
                present = true
                unlisted += 1
            }
            if present {
                if !entry.markers.isEmpty {
                    let failed = try store.delete(entry.markers.map(\.key))
                    for f in failed { diagnostics.fail(entry.metric, "remove marker \(f.key): \(f.error)") }
                    unmarked += 1
                }
                return
            }
            if let since = entry.markers.map(\.time).min() {
                if since <= cutoff { doomed.append(entry) }
            } else {
                try store.put(layout.markerKey(metric: entry.metric, time: now), body: .bytes([]))
                marked += 1
            }
        }
        if unlisted > 0, let root {
            diagnostics.warn("\(unlisted) store metric(s) missing from the listing have their file under \(root): kept (give --metrics the globs the listing was made with)")
        }
        if marked + unmarked > 0 {
            diagnostics.warn("\(marked) metric(s) newly seen gone from disk (kept \(goneAfterDays) more days), \(unmarked) back on disk")
        }
        if total > 0 && !doomed.isEmpty && Double(doomed.count) / Double(total) > maxShare && !force {
            throw PurgeRefused(doomed: doomed.count, total: total, maxShare: maxShare)
        }
        for entry in doomed {
            if Signals.stopRequested { break }
            let keys = entry.allKeys(layout: layout)   // markers last: a failed run retries
            if !dryRun, let state {
                do {
                    try state.forget(entry.metric)
                } catch {
                    diagnostics.warn("\(Diagnostics.shown(entry.metric)): the state could not be updated (\(error)); the next backup finds the versions gone by listing the store")
                }
            }
            let failed = try store.delete(keys)
            let failedKeys = Set(failed.map(\.key))
            for f in failed { diagnostics.fail(entry.metric, "delete \(f.key): \(f.error)") }
            for v in entry.versions where !failedKeys.contains(v.key) {
                output.write(Record(v.recordFields + [dryRun ? "would-purge" : "purged"]))
                diagnostics.bytesOut += v.size
            }
            diagnostics.done("purged")
        }
        try diagnostics.finish()
    }
}

/// The mass-purge guard tripped.
public struct PurgeRefused: Error, CustomStringConvertible {
    public var doomed: Int
    public var total: Int
    public var maxShare: Double
    public var description: String {
        "refusing to purge \(doomed) of \(total) metrics (more than \(Int(maxShare * 100))%): is the whisper volume mounted? Use --force if this is intended"
    }
}
