/// One stored version of a metric as its key tells it.
public struct StoredVersion: Sendable, Equatable {
    public var metric: String
    /// Seconds since the epoch.
    public var time: Int64
    /// Hex digest of the uncompressed whisper file: SHA-256 (64 digits), or SHA-1 (40) for
    /// the legacy layout, where it is read from the `.sha1` object beside it.
    public var hash: String
    public var key: String
    public var legacy: Bool
    /// Size of the stored object in bytes, when a listing told it (0 otherwise).
    public var size: Int64 = 0

    public init(metric: String, time: Int64, hash: String, key: String, legacy: Bool = false) {
        self.metric = metric
        self.time = time
        self.hash = hash
        self.key = key
        self.legacy = legacy
    }

    public var timeText: String { Timestamp.format(time) }

    /// `METRIC TIME HASH KEY SIZE`: the version record.
    public var recordFields: [String] { [metric, timeText, hash, key, String(size)] }
}

/// Maps keys to versions and back, for every store alike:
/// `PREFIX + METRIC + "/" + TIME + "." + SHA256 + ".wsp.gz"`.
/// Pure: no I/O, tested on its own.
public struct StoreLayout: Sendable {
    /// Ends in "/" unless empty. A leading "/" is kept: object stores treat it as part of the
    /// key, and the Python tool wrote such keys under a `--storage-path` starting with "/".
    public let prefix: String

    public init(prefix: String) {
        var p = prefix
        if !p.isEmpty && !p.hasSuffix("/") { p += "/" }
        self.prefix = p
    }

    public static let suffix = ".wsp.gz"
    public static let legacyHashSuffix = ".sha1"

    public func key(metric: String, time: Int64, hash: String) -> String {
        prefix + metric + "/" + Timestamp.format(time) + "." + hash + StoreLayout.suffix
    }

    /// Where every version of `metric` lives.
    public func metricPrefix(_ metric: String) -> String { prefix + metric + "/" }

    /// The listing prefix that covers every metric a glob can match.
    public func listPrefix(for glob: MetricGlob) -> String { prefix + glob.literalPrefix }

    /// The version a key names, or nil for keys that are not versions (markers, temp files,
    /// legacy `.sha1` companions).
    public func parse(_ key: String) -> StoredVersion? {
        guard key.hasPrefix(prefix) else { return nil }
        let rest = key.dropFirst(prefix.count)
        guard let slash = rest.lastIndex(of: "/") else { return nil }
        let metric = String(rest[..<slash])
        let file = rest[rest.index(after: slash)...]
        guard !metric.isEmpty, !metric.contains("/"), file.hasSuffix(StoreLayout.suffix) else { return nil }
        let stem = file.dropLast(StoreLayout.suffix.count)
        // New layout: 16-char basic time, ".", 64 hex digits.
        if stem.utf8.count == 16 + 1 + 64 {
            let t = stem.prefix(16)
            let dot = stem.index(stem.startIndex, offsetBy: 16)
            let h = stem[stem.index(after: dot)...]
            if stem[dot] == ".", let time = Timestamp.parseBasic(t), Hex.isHex(h, length: 64) {
                return StoredVersion(metric: metric, time: time, hash: String(h), key: key)
            }
        }
        // Legacy layout: METRIC/2015-01-26T15:41:55+00:00.wsp.gz; hash unknown until the
        // `.sha1` beside it is read.
        if let time = Timestamp.parse(String(stem)), stem.contains(":") || stem.contains("-") {
            return StoredVersion(metric: metric, time: time, hash: "", key: key, legacy: true)
        }
        return nil
    }

    /// The `.sha1` companion of a legacy version's key.
    public func legacyHashKey(_ key: String) -> String {
        String(key.dropLast(StoreLayout.suffix.count)) + StoreLayout.legacyHashSuffix
    }

    /// Name of the marker object of a metric gone from disk: `METRIC/gone-since.TIME`.
    public static let markerName = "gone-since."

    public func markerKey(metric: String, time: Int64) -> String {
        metricPrefix(metric) + StoreLayout.markerName + Timestamp.format(time)
    }

    /// The record that `wsp-pull verify` found a version damaged: `VERSIONKEY.bad` beside it
    /// (empty). Readers that do not know it ignore it; backups do not deduplicate against a
    /// version so marked, and the next backup of that content replaces it.
    public static let badSuffix = ".bad"

    public func badKey(_ versionKey: String) -> String { versionKey + StoreLayout.badSuffix }

    /// What one key of a metric is.
    public enum Entry: Equatable {
        case version(StoredVersion)
        /// A legacy `.sha1`; `versionKey` is the `.wsp.gz` it belongs to.
        case legacyHash(versionKey: String)
        case marker(time: Int64)
        /// A record that the version `versionKey` was found damaged.
        case bad(versionKey: String)
        /// Anything else under the metric's prefix.
        case other
    }

    /// The metric a key belongs to and what the key is, or nil for keys outside the prefix
    /// or not inside a metric's "directory".
    public func entry(_ key: String) -> (metric: String, entry: Entry)? {
        guard key.hasPrefix(prefix) else { return nil }
        let rest = key.dropFirst(prefix.count)
        guard let slash = rest.lastIndex(of: "/") else { return nil }
        let metric = String(rest[..<slash])
        guard !metric.isEmpty, !metric.contains("/") else { return nil }
        let file = rest[rest.index(after: slash)...]
        if let v = parse(key) { return (metric, .version(v)) }
        if file.hasPrefix(StoreLayout.markerName),
           let t = Timestamp.parseBasic(file.dropFirst(StoreLayout.markerName.count)) {
            return (metric, .marker(time: t))
        }
        if file.hasSuffix(StoreLayout.badSuffix) {
            let versionKey = String(key.dropLast(StoreLayout.badSuffix.count))
            if parse(versionKey) != nil { return (metric, .bad(versionKey: versionKey)) }
        }
        if file.hasSuffix(StoreLayout.legacyHashSuffix) {
            let versionKey = String(key.dropLast(StoreLayout.legacyHashSuffix.count)) + StoreLayout.suffix
            if let v = parse(versionKey), v.legacy { return (metric, .legacyHash(versionKey: versionKey)) }
        }
        return (metric, .other)
    }
}
