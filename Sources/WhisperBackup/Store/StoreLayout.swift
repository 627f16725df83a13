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
    /// The version a delta version applies to (nil: a full version, whose object is the
    /// whole file gzipped).
    public var base: VersionRef?

    public init(metric: String, time: Int64, hash: String, key: String, legacy: Bool = false, base: VersionRef? = nil) {
        self.metric = metric
        self.time = time
        self.hash = hash
        self.key = key
        self.legacy = legacy
        self.base = base
    }

    public var isDelta: Bool { base != nil }

    /// This version as a delta's base names it.
    public var ref: VersionRef { VersionRef(time: time, hash: hash) }

    public var timeText: String { Timestamp.format(time) }

    /// `METRIC TIME HASH KEY SIZE`: the version record.
    public var recordFields: [String] { [metric, timeText, hash, key, String(size)] }
}

/// A version of a metric named by its time and content hash: what a delta applies to.
public struct VersionRef: Sendable, Hashable, CustomStringConvertible {
    public var time: Int64
    public var hash: String
    public init(time: Int64, hash: String) {
        self.time = time
        self.hash = hash
    }

    /// `TIME.SHA256`, as in keys and snapshot records.
    public var description: String { Timestamp.format(time) + "." + hash }

    /// Parses `TIME.SHA256` (TIME in basic form).
    public init?(_ text: Substring) {
        // By bytes: every version key of every listing comes here.
        let bytes = text.utf8
        guard bytes.count == 16 + 1 + 64 else { return nil }
        let dot = bytes.index(bytes.startIndex, offsetBy: 16)
        guard bytes[dot] == UInt8(ascii: "."), bytes[..<dot].allSatisfy({ $0 < 0x80 }) else { return nil }
        let h = text[bytes.index(after: dot)...]
        guard let t = Timestamp.parseBasic(text[..<dot]), Hex.isHex(h, length: 64) else { return nil }
        self.init(time: t, hash: String(h))
    }
}

/// Maps keys to versions and back, for every store alike:
/// `PREFIX + METRIC + "/" + TIME + "." + SHA256 + ".wsp.gz"` for a full version, and
/// `PREFIX + METRIC + "/" + TIME + "." + SHA256 + "." + BASETIME + "." + BASESHA256 + ".wspd.gz"`
/// for a delta version (see `PageDelta`): SHA256 is always the hash of the file the version
/// produces; BASETIME and BASESHA256 name the version of the same metric it applies to.
/// Pure: no I/O, tested on its own.
///
/// A metric name longer than the store can hold (a `file://` path component is at most 255
/// bytes; an S3 key or Swift object name at most 1024) lives under
/// `PREFIX + HEAD + "~" + H + "/"` instead of `PREFIX + METRIC + "/"`: HEAD is the name's
/// first 200 bytes (cut back to a whole character), H the first 32 hex digits of the SHA-256
/// of the whole name, and the object `full-name` in that directory holds the whole name.
/// Its versions are named and stored as any other. Names that fit map exactly as before.
public struct StoreLayout: Sendable {
    /// Ends in "/" unless empty. A leading "/" is kept: object stores treat it as part of the
    /// key, and the Python tool wrote such keys under a `--storage-path` starting with "/".
    public let prefix: String
    /// What the store can hold: the longest path component and the longest key, in bytes.
    public let limits: Limits

    public struct Limits: Sendable {
        public var component: Int?
        public var key: Int?
        public init(component: Int? = nil, key: Int? = nil) {
            self.component = component
            self.key = key
        }
        /// A directory's limits (`NAME_MAX`).
        public static let file = Limits(component: 255)
        /// S3 keys and Swift object names.
        public static let object = Limits(key: 1024)
    }

    public init(prefix: String, limits: Limits = Limits()) {
        var p = prefix
        if !p.isEmpty && !p.hasSuffix("/") { p += "/" }
        self.prefix = p
        self.limits = limits
    }

    /// Bytes of a long name kept readable in its directory's name.
    public static let longHeadBytes = 200
    /// The object beside a long name's versions that holds the whole name.
    public static let fullNameObject = "full-name"
    /// Bytes after a version's directory: "/" + TIME + "." + SHA256 + ".wsp.gz".
    static let versionNameBytes = 1 + 16 + 1 + 64 + 7

    /// Whether `metric` is too long for this store to hold under its own name.
    public func isLong(_ metric: String) -> Bool {
        let n = metric.utf8.count
        if let c = limits.component, n > c { return true }
        if let k = limits.key, prefix.utf8.count + n + StoreLayout.versionNameBytes > k { return true }
        return false
    }

    /// The directory name of `metric`'s objects: the name itself, or HEAD~H for a long one.
    public func directory(_ metric: String) -> String {
        guard isLong(metric) else { return metric }
        return StoreLayout.head(metric, StoreLayout.longHeadBytes) + "~"
            + String(Digest.sha256Hex(Array(metric.utf8)).prefix(32))
    }

    /// The longest start of `text` of at most `bytes` bytes that ends on a whole character.
    public static func head(_ text: String, _ bytes: Int) -> String {
        var out = String.UnicodeScalarView()
        var n = 0
        for u in text.unicodeScalars {
            n += UTF8.width(u)
            if n > bytes { break }
            out.append(u)
        }
        return String(out)
    }

    /// Whether a directory name has the shape of a long name's (HEAD~H); it is one when its
    /// `full-name` object is there.
    public static func looksLong(_ directory: String) -> Bool {
        let u = Array(directory.utf8)
        guard u.count >= 34, u[u.count - 33] == UInt8(ascii: "~") else { return false }
        return Hex.isHex(Substring(String(decoding: u[(u.count - 32)...], as: UTF8.self)), length: 32)
    }

    /// Whether `name`, read from the `full-name` object of `directory`, belongs there.
    public func fullNameFits(_ name: String, directory: String) -> Bool {
        isLong(name) && self.directory(name) == directory
    }

    /// The key of the object holding a long metric's whole name.
    public func fullNameKey(_ metric: String) -> String { metricPrefix(metric) + StoreLayout.fullNameObject }

    public static let suffix = ".wsp.gz"
    public static let deltaSuffix = ".wspd.gz"
    public static let legacyHashSuffix = ".sha1"

    /// Metrics with longer names are always stored as full versions: a delta's key is 83
    /// bytes longer than a full version's, and long-name directories stay as they are.
    public static let maxDeltaMetricBytes = 600

    public func key(metric: String, time: Int64, hash: String) -> String {
        metricPrefix(metric) + Timestamp.format(time) + "." + hash + StoreLayout.suffix
    }

    public func deltaKey(metric: String, time: Int64, hash: String, base: VersionRef) -> String {
        metricPrefix(metric) + Timestamp.format(time) + "." + hash + "." + base.description + StoreLayout.deltaSuffix
    }

    /// The key of `version`, full or delta.
    public func key(of version: StoredVersion) -> String {
        if let base = version.base { return deltaKey(metric: version.metric, time: version.time, hash: version.hash, base: base) }
        return key(metric: version.metric, time: version.time, hash: version.hash)
    }

    /// Where every version of `metric` lives.
    public func metricPrefix(_ metric: String) -> String { prefix + directory(metric) + "/" }

    /// The listing prefix that covers every metric whose name starts with `start`, long
    /// names (whose directories keep only their first bytes) included.
    public func listPrefix(_ start: String) -> String {
        prefix + (limits.component == nil && limits.key == nil ? start : StoreLayout.head(start, StoreLayout.longHeadBytes))
    }

    /// The listing prefix that covers every metric a glob can match.
    public func listPrefix(for glob: MetricGlob) -> String { listPrefix(glob.literalPrefix) }

    /// A key's metric directory and object name (the key after the prefix, split at its last
    /// "/" byte), or nil when the directory is empty or holds a "/". Every key of every
    /// listing comes here: one pass over the bytes where they are contiguous, as a listing's
    /// keys are.
    static func split(_ rest: Substring) -> (directory: Substring, name: Substring)? {
        let u = rest.utf8
        // The offset of the only "/", -1 for none or more than one.
        let scanned: Int? = u.withContiguousStorageIfAvailable { bytes -> Int in
            var at = -1, slashes = 0
            for i in bytes.indices where bytes[i] == UInt8(ascii: "/") { at = i; slashes += 1 }
            return slashes == 1 ? at : -1
        }
        let slash: Substring.Index
        if let scanned {
            guard scanned > 0 else { return nil }
            slash = u.index(u.startIndex, offsetBy: scanned)
        } else {
            guard let last = u.lastIndex(of: UInt8(ascii: "/")), last != u.startIndex,
                  !rest[..<last].utf8.contains(UInt8(ascii: "/")) else { return nil }
            slash = last
        }
        return (rest[..<slash], rest[u.index(after: slash)...])
    }

    /// The version a key names, or nil for keys that are not versions (markers, temp files,
    /// legacy `.sha1` companions).
    public func parse(_ key: String) -> StoredVersion? {
        guard key.hasPrefix(bytes: prefix), let (directory, file) = StoreLayout.split(key.droppingFirst(bytes: prefix.utf8.count)) else { return nil }
        return version(key: key, metric: String(directory), file: file)
    }

    /// `name` without `suffix` (ASCII), compared by bytes (a name that ends so by characters
    /// does by bytes; one that ends so by bytes only leaves a stem no version name has);
    /// nil when it does not end so.
    static func stem(_ name: Substring, _ suffix: String) -> Substring? {
        let bytes = name.utf8, n = suffix.utf8.count
        guard bytes.count >= n else { return nil }
        let cut = bytes.index(bytes.endIndex, offsetBy: -n)
        guard bytes[cut...].elementsEqual(suffix.utf8) else { return nil }
        return name[..<cut]
    }

    /// The version that object `file` of `metric`'s directory (key `key`) is, if any.
    func version(key: String, metric: String, file: Substring) -> StoredVersion? {
        if let stem = StoreLayout.stem(file, StoreLayout.deltaSuffix) {
            // TIME.SHA256.BASETIME.BASESHA256: two version names joined by a dot.
            let bytes = stem.utf8
            guard bytes.count == 2 * 81 + 1 else { return nil }
            let mid = bytes.index(bytes.startIndex, offsetBy: 81)
            guard bytes[mid] == UInt8(ascii: "."), let own = VersionRef(stem[..<mid]), let base = VersionRef(stem[bytes.index(after: mid)...]),
                  base.time < own.time else { return nil }
            return StoredVersion(metric: metric, time: own.time, hash: own.hash, key: key, base: base)
        }
        guard let stem = StoreLayout.stem(file, StoreLayout.suffix) else { return nil }
        // New layout: 16-char basic time, ".", 64 hex digits.
        if let v = VersionRef(stem) {
            return StoredVersion(metric: metric, time: v.time, hash: v.hash, key: key)
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
        String(key.droppingLast(bytes: StoreLayout.suffix.utf8.count)) + StoreLayout.legacyHashSuffix
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
        /// The `full-name` object of a long name's directory.
        case fullName
        /// A record that the version `versionKey` was found damaged.
        case bad(versionKey: String)
        /// Anything else under the metric's prefix.
        case other
    }

    /// The metric a key belongs to and what the key is, or nil for keys outside the prefix
    /// or not inside a metric's "directory".
    public func entry(_ key: String) -> (metric: String, entry: Entry)? {
        guard key.hasPrefix(bytes: prefix), let (directory, file) = StoreLayout.split(key.droppingFirst(bytes: prefix.utf8.count)) else { return nil }
        let metric = String(directory)
        if let v = version(key: key, metric: metric, file: file) { return (metric, .version(v)) }
        if file.hasPrefix(bytes: StoreLayout.markerName),
           let t = Timestamp.parseBasic(file.droppingFirst(bytes: StoreLayout.markerName.utf8.count)) {
            return (metric, .marker(time: t))
        }
        if file.hasSuffix(bytes: StoreLayout.badSuffix) {
            let versionKey = String(key.droppingLast(bytes: StoreLayout.badSuffix.utf8.count))
            if parse(versionKey) != nil { return (metric, .bad(versionKey: versionKey)) }
        }
        if file.hasSuffix(bytes: StoreLayout.legacyHashSuffix) {
            let versionKey = String(key.droppingLast(bytes: StoreLayout.legacyHashSuffix.utf8.count)) + StoreLayout.suffix
            if let v = parse(versionKey), v.legacy { return (metric, .legacyHash(versionKey: versionKey)) }
        }
        if file == StoreLayout.fullNameObject && StoreLayout.looksLong(metric) { return (metric, .fullName) }
        return (metric, .other)
    }
}
