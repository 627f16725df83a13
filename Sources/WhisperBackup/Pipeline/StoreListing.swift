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
    /// The `full-name` object of a long name (see `StoreLayout`), removed last by a purge.
    public var fullNameKey: String?

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
        guard let v = versions.last, isIntact(v) else { return nil }
        return v
    }

    /// The version `ref` names (a delta's base), if listed.
    public func version(_ ref: VersionRef) -> StoredVersion? {
        versions.last { $0.time == ref.time && $0.hash == ref.hash }
    }

    /// Deltas longer than this are refused: no chain this tool writes comes near it.
    public static let maxChain = 1000

    /// Whether the listing shows `v` restorable: neither it nor any version its chain of
    /// bases reaches is missing or marked bad, and the chain ends in a full version. A
    /// version that is not intact is never deduplicated against and never vouched for.
    public func isIntact(_ v: StoredVersion) -> Bool {
        var at = v
        for _ in 0...MetricObjects.maxChain {
            guard bad[at.key] == nil else { return false }
            guard let ref = at.base else { return true }
            guard let next = version(ref), next.time < at.time else { return false }
            at = next
        }
        return false
    }

    /// Keys of the leftovers of the Python tool (incomplete versions and stray `.sha1`s) older
    /// than `time`: a later complete version shows they are not an upload in progress.
    public func legacyLeftovers(olderThan time: Int64, layout: StoreLayout) -> [String] {
        var keys = incomplete.filter { $0.time < time }.map(\.key)
        for k in strayHashKeys {
            let versionKey = String(k.droppingLast(bytes: StoreLayout.legacyHashSuffix.utf8.count)) + StoreLayout.suffix
            if let v = layout.parse(versionKey), v.time < time { keys.append(k) }
        }
        return keys
    }

    /// Every key a purge of this metric removes: versions (with their `.sha1`), leftovers,
    /// and the markers last, so that a purge that fails part way is retried by the next run.
    public func allKeys(layout: StoreLayout) -> [String] {
        var keys = versions.map(\.key) + versions.filter(\.legacy).map { layout.legacyHashKey($0.key) }
        keys += incomplete.map(\.key) + strayHashKeys + bad.values.sorted()
        return keys + markers.map(\.key) + (fullNameKey.map { [$0] } ?? [])
    }

    /// The same objects under the metric's whole name (read from its `full-name` object).
    mutating func rename(to name: String) {
        metric = name
        for i in versions.indices { versions[i].metric = name }
        for i in incomplete.indices { incomplete[i].metric = name }
    }
}

/// Keys a listing met that fit no layout (an upper-case or missing hash, a stray README):
/// skipped, and counted so the tool says so once.
public final class StrayKeys {
    public private(set) var count = 0
    public private(set) var example: String?

    public init() {}

    func add(_ key: String) {
        count += 1
        if example == nil { example = key }
    }

    /// The one warning, or nil when there were none.
    public func warning(_ location: String) -> String? {
        guard count > 0, let example else { return nil }
        return "\(location): skipped \(count) key(s) that fit no layout of this tool (e.g. \(Diagnostics.shown(example)))"
    }
}

/// Reading a store's listing metric by metric, for every layout alike.
public enum StoreListing {
    /// One listing pass over `prefix`, calling `body` once per metric that `include` accepts,
    /// with all its objects (the keys of one metric are contiguous in key order). A range:
    /// from the first key after `startAfter` to the last key that starts with `through`.
    /// Without `sizes`, objects may come with size -1 (see `Store.list`).
    public static func forEachMetric(in store: Store, layout: StoreLayout, prefix: String, startAfter: String? = nil,
                                     through: String? = nil, sizes: Bool = true,
                                     include: (String) -> Bool = { _ in true }, strays: StrayKeys? = nil,
                                     _ body: (MetricObjects) throws -> Void) throws {
        var acc: Accumulator? = nil
        var skipping: String? = nil
        let marker = StoreMarker.key(layout)
        // A long name's directory (HEAD~H) is taken or skipped once its whole name is read.
        func emit(_ a: Accumulator) throws {
            var objects = a.finish()
            if objects.fullNameKey != nil {
                guard let name = try fullName(a.objects.metric, in: store, layout: layout) else {
                    strays?.add(objects.fullNameKey!)
                    return
                }
                objects.rename(to: name)
                guard include(name) else { return }
            } else if StoreLayout.looksLong(objects.metric) && !include(objects.metric) {
                return
            }
            try body(objects)
        }
        struct PastTheRange: Error {}
        do {
          try store.list(prefix: prefix, startAfter: startAfter, sizes: sizes) { obj in
            if let through, !obj.key.hasPrefix(bytes: through), through.utf8.lexicographicallyPrecedes(obj.key.utf8) {
                throw PastTheRange()
            }
            guard let (metric, entry) = layout.entry(obj.key) else {
                // The store's marker and hidden temp files belong here; anything else is stray.
                let name = obj.key.split(byte: UInt8(ascii: "/")).last ?? ""
                if obj.key != marker && !name.hasPrefix(bytes: ".") { strays?.add(obj.key) }
                return
            }
            // Metrics are told apart by bytes: `café` and `cafe` + U+0301 are two metrics (two
            // directories, two files), though Swift's == calls them equal.
            if let skipping, metric.sameBytes(skipping) { return }
            if case .other = entry {
                if include(metric) { strays?.add(obj.key) }
                return
            }
            if acc.map({ !metric.sameBytes($0.objects.metric) }) ?? true {
                if let a = acc { try emit(a) }
                acc = nil
                guard StoreLayout.looksLong(metric) || include(metric) else {
                    skipping = metric
                    return
                }
                skipping = nil
                acc = Accumulator(metric: metric)
            }
            acc!.add(obj, entry)
          }
        } catch is PastTheRange {}
        if let a = acc { try emit(a) }
    }

    /// The whole name a long name's directory holds in its `full-name` object, or nil when
    /// that object does not name a metric that belongs in this directory.
    static func fullName(_ directory: String, in store: Store, layout: StoreLayout) throws -> String? {
        let scratch = system_getenv("TMPDIR") ?? "/tmp"
        let bytes = try store.getBytes(layout.prefix + directory + "/" + StoreLayout.fullNameObject, scratchDir: scratch)
        guard bytes.count <= MetricName.maxLength, let name = String(validating: bytes, as: UTF8.self),
              (try? MetricName.validate(name)) != nil, layout.fullNameFits(name, directory: directory) else { return nil }
        return name
    }

    /// The objects of each of `metrics`: one listing of the range from the first to the last
    /// in key order where the store lists ranges cheaply (S3, Swift: a request per page of
    /// 1000 keys, where a listing per metric costs a request, a round trip, each; records
    /// come sorted, so a batch is one stretch of the store), else one listing per metric.
    /// Names too long for a key (listed under `HEAD~H/`) get a listing of their own.
    /// Keyed by the names' bytes (`Array(metric.utf8)`): canonically equivalent names are
    /// different metrics.
    public static func metrics(_ metrics: [String], in store: Store, layout: StoreLayout) throws -> [[UInt8]: MetricObjects] {
        var out: [[UInt8]: MetricObjects] = [:]
        let short = metrics.filter { !layout.isLong($0) }
        let ranged = Set(short.map { Array($0.utf8) })
        if store.listsRanges && ranged.count > 1 {
            let prefixes = short.map { layout.metricPrefix($0) }.sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) }
            // Every key of the first metric sorts after its prefix without the slash.
            try forEachMetric(in: store, layout: layout, prefix: layout.prefix, startAfter: String(prefixes[0].droppingLast(bytes: 1)),
                              through: prefixes[prefixes.count - 1], include: { ranged.contains(Array($0.utf8)) }) { out[Array($0.metric.utf8)] = $0 }
            for m in short where out[Array(m.utf8)] == nil { out[Array(m.utf8)] = MetricObjects(metric: m) }
        }
        for m in metrics where out[Array(m.utf8)] == nil { out[Array(m.utf8)] = try metric(m, in: store, layout: layout) }
        return out
    }

    /// The objects of one metric (one listing of its own prefix).
    public static func metric(_ metric: String, in store: Store, layout: StoreLayout, sizes: Bool = true) throws -> MetricObjects {
        var out = MetricObjects(metric: metric)
        try forEachMetric(in: store, layout: layout, prefix: layout.metricPrefix(metric), sizes: sizes, include: { $0.sameBytes(metric) }) { out = $0 }
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
            case .fullName:
                objects.fullNameKey = obj.key
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
