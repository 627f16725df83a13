/// Every object of one metric, as one listing pass saw them.
public struct MetricObjects {
    public var metric: String
    /// Complete versions, oldest first: the new layout's, and legacy ones whose `.sha1` is there.
    public var versions: [StoredVersion] = []
    /// Legacy `.wsp.gz` objects without their `.sha1`: an upload of the Python tool that did
    /// not finish (it wrote the `.sha1` second, and never saw such a version itself).
    public var incomplete: [StoredVersion] = []
    /// Legacy `.sha1` objects without their `.wsp.gz`: a delete of the Python tool that did
    /// not finish.
    public var strayHashKeys: [String] = []
    /// Records of versions `wsp-pull verify` found damaged: version key -> record key.
    public var bad: [String: String] = [:]
    /// `gone-since` markers of the purge.
    public var markers: [(key: String, time: Int64)] = []

    public init(metric: String) { self.metric = metric }

    /// Whether the store holds anything of this metric that the tools know.
    public var isEmpty: Bool { versions.isEmpty && incomplete.isEmpty && strayHashKeys.isEmpty && markers.isEmpty && bad.isEmpty }

    /// Bad records whose version is gone (a replacement interrupted between its two deletes).
    public var strayBadKeys: [String] {
        let present = Set(versions.map(\.key))
        return bad.filter { !present.contains($0.key) }.map(\.value).sorted()
    }

    /// The newest version, when the store holds it undamaged as far as anyone found: the one a
    /// backup may deduplicate against (a version marked bad is replaced instead).
    public var newestGood: StoredVersion? {
        guard let v = versions.last, bad[v.key] == nil else { return nil }
        return v
    }

    /// Keys of the leftovers of the Python tool (incomplete versions and stray `.sha1`s) older
    /// than `time`: a later complete version shows they are not an upload in progress.
    public func legacyLeftovers(olderThan time: Int64, layout: StoreLayout) -> [String] {
        var keys = incomplete.filter { $0.time < time }.map(\.key)
        for k in strayHashKeys {
            let versionKey = String(k.dropLast(StoreLayout.legacyHashSuffix.count)) + StoreLayout.suffix
            if let v = layout.parse(versionKey), v.time < time { keys.append(k) }
        }
        return keys
    }

    /// Every key a purge of this metric removes: versions (with their `.sha1`), leftovers,
    /// and the markers last, so that a purge that fails part way is retried by the next run.
    public func allKeys(layout: StoreLayout) -> [String] {
        var keys = versions.map(\.key) + versions.filter(\.legacy).map { layout.legacyHashKey($0.key) }
        keys += incomplete.map(\.key) + strayHashKeys + bad.values.sorted()
        return keys + markers.map(\.key)
    }
}

/// Reading a store's listing metric by metric, for every layout alike.
public enum StoreListing {
    /// One listing pass over `prefix`, calling `body` once per metric that `include` accepts,
    /// with all its objects (the keys of one metric are contiguous in key order).
    public static func forEachMetric(in store: Store, layout: StoreLayout, prefix: String,
                                     include: (String) -> Bool = { _ in true },
                                     _ body: (MetricObjects) throws -> Void) throws {
        var acc: Accumulator? = nil
        var skipping: String? = nil
        try store.list(prefix: prefix) { obj in
            guard let (metric, entry) = layout.entry(obj.key) else { return }
            if metric == skipping { return }
            if metric != acc?.objects.metric {
                if let a = acc { try body(a.finish()) }
                acc = nil
                guard include(metric) else {
                    skipping = metric
                    return
                }
                skipping = nil
                acc = Accumulator(metric: metric)
            }
            acc!.add(obj, entry)
        }
        if let a = acc { try body(a.finish()) }
    }

    /// The objects of one metric (one listing of its own prefix).
    public static func metric(_ metric: String, in store: Store, layout: StoreLayout) throws -> MetricObjects {
        var out = MetricObjects(metric: metric)
        try forEachMetric(in: store, layout: layout, prefix: layout.metricPrefix(metric), include: { $0 == metric }) { out = $0 }
        return out
    }

    struct Accumulator {
        var objects: MetricObjects
        var legacy: [StoredVersion] = []
        var hashKeys: [String: String] = [:]   // versionKey -> .sha1 key

        init(metric: String) { objects = MetricObjects(metric: metric) }

        mutating func add(_ obj: StoreObject, _ entry: StoreLayout.Entry) {
            switch entry {
            case .version(var v):
                v.size = obj.size
                if v.legacy { legacy.append(v) } else { objects.versions.append(v) }
            case .legacyHash(let versionKey):
                hashKeys[versionKey] = obj.key
            case .marker(let time):
                objects.markers.append((obj.key, time))
            case .bad(let versionKey):
                objects.bad[versionKey] = obj.key
            case .other:
                break
            }
        }

        func finish() -> MetricObjects {
            var o = objects
            var paired = Set<String>()
            for v in legacy {
                if hashKeys[v.key] != nil {
                    o.versions.append(v)
                    paired.insert(v.key)
                } else {
                    o.incomplete.append(v)
                }
            }
            o.strayHashKeys = hashKeys.filter { !paired.contains($0.key) }.map(\.value).sorted()
            o.versions.sort(by: Versions.isOlder)
            o.incomplete.sort(by: Versions.isOlder)
            return o
        }
    }
}
