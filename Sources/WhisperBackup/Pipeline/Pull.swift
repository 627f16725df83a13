#if canImport(Glibc)
import Glibc
#endif

/// `wsp-pull list`: version records `METRIC TIME HASH KEY SIZE` for the metrics that match
/// the globs (or the metric names read as records): the newest version at or before
/// `before` per metric, or every such version with `all`. Each group of globs that share a
/// literal prefix costs one listing pass over that prefix.
public struct PullList {
    public var store: Store
    public var layout: StoreLayout
    public var before: Int64?
    public var all: Bool

    public init(store: Store, layout: StoreLayout, before: Int64?, all: Bool) {
        self.store = store
        self.layout = layout
        self.before = before
        self.all = all
    }

    public func run(globs: [MetricGlob], input: RecordInput?, output: RecordWriter, diagnostics: Diagnostics) throws {
        defer { output.flush() }   // the records held (RecordWriter.hold)
        try forEachSelected(globs: globs, input: input, diagnostics: diagnostics, stop: { output.closed }) { objects, chosen in
            for var v in chosen {
                if v.legacy {
                    do {
                        v.hash = try LegacyLayout.hash(of: v, in: store, layout: layout)
                    } catch {
                        diagnostics.fail(v.metric, "\(v.key): \(error)")
                        continue
                    }
                }
                output.hold(Record(v.recordFields))
                diagnostics.done("listed")
            }
            if !objects.incomplete.isEmpty {
                diagnostics.warn("\(objects.metric): skipped \(objects.incomplete.count) legacy version(s) without their .sha1 (an interrupted upload)")
            }
        }
        try diagnostics.finish()
    }

    /// Calls `body` with the objects of each selected metric and its chosen versions (oldest
    /// first; legacy hashes not read yet): the metrics matching `globs`, or the metric names
    /// read from `input`. A metric or glob that selects nothing is reported as failed, and so
    /// is a listing that fails, or a `body` that throws; the run goes on with the rest.
    /// With `includeIncomplete`, a metric whose only objects are legacy versions without
    /// their `.sha1` counts as selected too (for `verify`, which reports them).
    public func forEachSelected(globs: [MetricGlob], input: RecordInput?, diagnostics: Diagnostics,
                                includeIncomplete: Bool = false, stop: () -> Bool = { false },
                                _ body: (MetricObjects, [StoredVersion]) throws -> Void) throws {
        let none = before == nil ? "no version in \(store.location)" : "no version at or before \(Timestamp.format(before!)) in \(store.location)"
        if let input {
            // Metric names as records: one listing of each metric's own prefix.
            var last: String? = nil
            for record in input {
                if Signals.stopRequested || stop() { break }
                let metric = record.metric
                if let last, metric.sameBytes(last) { continue }
                last = metric
                do {
                    try MetricName.validate(metric)
                    let objects = try StoreListing.metric(metric, in: store, layout: layout)
                    let chosen = select(objects.versions)
                    if chosen.isEmpty && (!includeIncomplete || objects.incomplete.isEmpty) {
                        diagnostics.fail(metric, none + PullList.incompleteNote(objects))
                        continue
                    }
                    try body(objects, chosen)
                } catch {
                    diagnostics.fail(metric, error)
                }
            }
            return
        }
        let strays = StrayKeys()
        defer { if let w = strays.warning(store.location) { diagnostics.warn(w) } }
        // Listing prefixes as the layout cuts them (long names keep only their first bytes).
        let start = { (g: MetricGlob) in String(layout.listPrefix(g.literalPrefix).droppingFirst(bytes: layout.prefix.utf8.count)) }
        for group in PullList.groups(globs, start: start) {
            if Signals.stopRequested || stop() { break }
            // Metrics listed per glob: a glob that selects nothing is a failure, not silence.
            var found = [Int](repeating: 0, count: group.globs.count)
            do {
                try StoreListing.forEachMetric(in: store, layout: layout, prefix: layout.prefix + group.prefix,
                                               include: { m in group.globs.contains { $0.matches(m) } }, strays: strays) { objects in
                    if Signals.stopRequested || stop() { return }
                    let chosen = select(objects.versions)
                    if chosen.isEmpty && (!includeIncomplete || objects.incomplete.isEmpty) {
                        // Never dropped without a word: a metric whose only versions lack their .sha1.
                        if !objects.incomplete.isEmpty {
                            diagnostics.warn("\(objects.metric): skipped \(objects.incomplete.count) legacy version(s) without their .sha1 (an interrupted upload)")
                        }
                        return
                    }
                    for (i, g) in group.globs.enumerated() where g.matches(objects.metric) { found[i] += 1 }
                    do {
                        try body(objects, chosen)
                    } catch {
                        diagnostics.fail(objects.metric, error)
                    }
                }
            } catch {
                diagnostics.fail(group.globs.map(\.pattern).joined(separator: " "), "listing \(store.location): \(error)")
                continue
            }
            for (i, g) in group.globs.enumerated() where found[i] == 0 && !Signals.stopRequested && !stop() {
                diagnostics.fail(g.pattern, before == nil ? "no metric in \(store.location) matches"
                    : "no version at or before \(Timestamp.format(before!)) of a matching metric in \(store.location)")
            }
        }
    }

    /// Why a metric with no complete version still had objects, for its failure line.
    static func incompleteNote(_ objects: MetricObjects) -> String {
        objects.incomplete.isEmpty ? ""
            : "; skipped \(objects.incomplete.count) legacy version(s) without their .sha1 (an interrupted upload)"
    }

    func select(_ versions: [StoredVersion]) -> [StoredVersion] {
        let eligible = versions.filter { before == nil || $0.time <= before! }.sorted(by: Versions.isOlder)
        if all { return eligible }
        return eligible.last.map { [$0] } ?? []
    }

    /// Globs grouped so that no two groups' listing prefixes overlap: a glob whose literal
    /// prefix starts with another's joins that group (no metric is listed twice).
    static func groups(_ globs: [MetricGlob], start: (MetricGlob) -> String = { $0.literalPrefix })
        -> [(prefix: String, globs: [MetricGlob])] {
        var out: [(prefix: String, globs: [MetricGlob])] = []
        for (s, g) in globs.map({ (start($0), $0) }).sorted(by: { $0.0.utf8.count < $1.0.utf8.count }) {
            if let i = out.firstIndex(where: { s.hasPrefix(bytes: $0.prefix) }) {
                out[i].globs.append(g)
            } else {
                out.append((s, [g]))
            }
        }
        return out
    }
}

/// The Python whisper-backup layout (`METRIC/2015-01-26T15:41:55+00:00.wsp.gz` with a
/// `.sha1` beside it holding the SHA-1 of the uncompressed file).
public enum LegacyLayout {
    public static func hash(of version: StoredVersion, in store: Store, layout: StoreLayout) throws -> String {
        let scratch = system_getenv("TMPDIR") ?? "/tmp"
        let bytes = try store.getBytes(layout.legacyHashKey(version.key), scratchDir: scratch)
        let text = String(decoding: bytes, as: UTF8.self).trimmingCharacters(in: " \n\r\t")
        let hex = String(text.prefix(40)).lowercased()
        guard Hex.isHex(Substring(hex), length: 40) else {
            throw RecordError("\(layout.legacyHashKey(version.key)): not a SHA-1 digest")
        }
        return hex
    }
}

extension String {
    func trimmingCharacters(in set: String) -> String {
        let chars = Set(set)
        var s = Substring(self)
        while let f = s.first, chars.contains(f) { s = s.dropFirst() }
        while let l = s.last, chars.contains(l) { s = s.dropLast() }
        return String(s)
    }
}

/// `wsp-pull get`: downloads the versions named by version records into the bounded spool
/// and writes fetched records `METRIC TIME HASH GZFILE`. Verification is `wsp-merge`'s first
/// step (and `wsp-pull verify`'s).
public struct PullGet {
    public var store: Store
    public var layout: StoreLayout
    public var spool: Spool
    /// `--in-place`: a full version of a file:// store is not copied or linked into the spool;
    /// its GZFILE is the stored object itself, for a consumer that reads it and never removes
    /// it (wsp-merge removes spool files only). Delta versions are still rebuilt in the spool.
    public var inPlace: Bool

    public init(store: Store, layout: StoreLayout, spool: Spool, inPlace: Bool = false) {
        self.store = store
        self.layout = layout
        self.spool = spool
        self.inPlace = inPlace
    }

    public func run(input: RecordInput, output: RecordWriter, diagnostics: Diagnostics) throws {
        diagnostics.expect(input)
        let rebuilt = Rebuilt()
        // From a file:// store the objects ahead are read while this one is copied. In place
        // too: wsp-merge's own read-ahead looks only 16 files (a few milliseconds) ahead,
        // this stage a batch or more, so the disk has the reads long before they are needed.
        let records = ReadAhead.records(input, until: output) { [layout, store] record in
            let version = Result { try PullGet.version(from: record, layout: layout) }
            let file = (try? version.get()).flatMap { $0.isDelta ? nil : store.localFile($0.key) }
            return (version, file.map { ReadAhead.Item(path: $0, unless: nil) })
        }
        for (record, version) in records {
            do {
                try getOne(try version.get(), size: Int64(record[4] ?? "") ?? 0, output: output, diagnostics: diagnostics, rebuilt: rebuilt)
                diagnostics.done("fetched")
            } catch let e as SpoolFull where e.stopsTheStage {
                diagnostics.fail(record.metric, e)   // see Snap.run: a stalled spool stops the stage
                break
            } catch {
                diagnostics.fail(record.metric, error)
            }
        }
        try diagnostics.finish()
    }

    /// What rebuilding delta versions keeps between records: the chain of the last metric
    /// (so `list --all | get` downloads each object of a chain once) and one compressor.
    /// Level 0 (stored blocks, zero runs still encoded): the spool file lives only until
    /// wsp-merge reads it, and compressing it again would cost more than the whole rebuild.
    final class Rebuilt {
        var chain: VersionChain?
        lazy var compressor = Gzip.Compressor(level: 0)
        let buffer = ByteBuffer(capacity: 0)
    }

    /// Fetches `version` (parsed from its record; `size` from its field 5) into the spool.
    func getOne(_ version: StoredVersion, size: Int64, output: RecordWriter, diagnostics: Diagnostics, rebuilt: Rebuilt = Rebuilt()) throws {
        if inPlace && !version.isDelta {
            // The stored object itself: nothing to discard if the record is never read.
            _ = output.write(Record([version.metric, version.timeText, version.hash, try storedObject(version, diagnostics: diagnostics)]))
            return
        }
        let dest = version.isDelta
            ? try rebuild(version, rebuilt, diagnostics: diagnostics)
            : try fetch(version, size: size, diagnostics: diagnostics)
        // A record the next stage never sees leaves no spool file behind.
        if !output.write(Record([version.metric, version.timeText, version.hash, dest])) {
            Spool.discard(dest)
        }
    }

    /// The path of `version`'s object in a file:// store (`--in-place`), once it is known to
    /// be there as a regular file.
    func storedObject(_ version: StoredVersion, diagnostics: Diagnostics) throws -> String {
        guard let path = store.localFile(version.key) else { throw RecordError("\(store.location) keeps no object as a file (--in-place is for file:// stores)") }
        let st: stat
        do {
            st = try system_stat(path)
        } catch Errno.noSuchFileOrDirectory {
            throw RecordError("\(version.key): not in the store")
        }
        guard st.st_mode & S_IFMT == S_IFREG else { throw RecordError("\(version.key): not a regular file in the store") }
        diagnostics.bytesIn += Int64(st.st_size)
        return path
    }

    /// Downloads `version` into a new spool file (room for `size` bytes is reserved first)
    /// and returns its path; from a file:// store on the spool's filesystem the spool file
    /// is a hard link to the object (`Store.link`; the spool never writes to such a file).
    /// Not verified.
    public func fetch(_ version: StoredVersion, size: Int64, diagnostics: Diagnostics) throws -> String {
        let dest = try spool.add(reserving: size) { path in
            if try !store.link(version.key, as: path) { try store.get(version.key, to: path) }
        }
        if let st = try? system_stat(dest) { diagnostics.bytesIn += Int64(st.st_size) }
        return dest
    }

    /// Rebuilds delta `version` from its chain (the metric listed once; see `VersionChain`)
    /// and writes it to a new spool file as a gzip, as if the whole file had been stored:
    /// the next stage takes it as it takes a full version. A chain that breaks anywhere
    /// writes nothing. Room is reserved for the file written; the objects of the chain pass
    /// through the spool directory one at a time as temp files, each removed once unpacked.
    func rebuild(_ version: StoredVersion, _ rebuilt: Rebuilt, diagnostics: Diagnostics) throws -> String {
        if rebuilt.chain?.objects.metric != version.metric {
            rebuilt.chain = nil   // one whisper file held at a time
            let objects = try StoreListing.metric(version.metric, in: store, layout: layout)
            rebuilt.chain = VersionChain(objects: objects, store: store, layout: layout, scratch: spool.dir)
        }
        let chain = rebuilt.chain!
        guard let listed = chain.objects.versions.first(where: { $0.key == version.key }) else {
            throw RecordError("\(version.key): not in the store")
        }
        let before = chain.bytesIn
        defer { diagnostics.bytesIn += chain.bytesIn - before }
        let content = try chain.rebuild(listed)
        // Cheap compression: the file only crosses the spool to the next stage.
        content.withUnsafeBytes { rebuilt.compressor.compress($0, into: rebuilt.buffer) }
        return try spool.write(rebuilt.buffer.bytes)
    }

    /// The version a record names: `METRIC TIME HASH [KEY]`; without KEY the key follows the
    /// layout. A KEY must belong to METRIC under this store's prefix; a delta version's KEY
    /// must name the version of TIME and HASH.
    static func version(from record: Record, layout: StoreLayout) throws -> StoredVersion {
        let metric = record.metric
        try MetricName.validate(metric)
        guard let timeText = record[1], let time = Timestamp.parse(timeText) else {
            throw RecordError("version record needs TIME in field 2")
        }
        guard let hash = record[2], Hex.isHex(Substring(hash), length: 64) || Hex.isHex(Substring(hash), length: 40) else {
            throw RecordError("version record needs a SHA-256 (or legacy SHA-1) in field 3")
        }
        let key = record[3] ?? layout.key(metric: metric, time: time, hash: hash)
        guard key.hasPrefix(bytes: layout.metricPrefix(metric)), !key.split(byte: UInt8(ascii: "/")).contains(where: { $0.sameBytes("..") }) else {
            throw RecordError("key \(key) is not a version of \(metric) in this store")
        }
        if key.hasSuffix(bytes: StoreLayout.deltaSuffix) {
            guard let v = layout.parse(key), v.isDelta, v.metric.sameBytes(layout.directory(metric)) else {
                throw RecordError("key \(key) is not a delta version of \(metric) in this store")
            }
            guard v.time == time, v.hash == hash else {
                throw RecordError("key \(key) is not the version of TIME \(timeText) and SHA-256 \(hash)")
            }
            return StoredVersion(metric: metric, time: time, hash: hash, key: key, base: v.base)
        }
        return StoredVersion(metric: metric, time: time, hash: hash, key: key, legacy: hash.utf8.count == 40)
    }
}
