#if canImport(Glibc)
import Glibc
#endif

/// What `wsp-snap` remembers of a metric's last snapshot, so the next one can be stored as a
/// delta without downloading anything: the hash of every page of the content, its SHA-256,
/// and how many deltas lead to it from the last full version. One file per metric in the
/// state directory, `STATE/pages/XX/HASH32` (XX: the first 2 hex digits of the SHA-256 of
/// the metric's name, HASH32 its first 32). Layout (little-endian):
///
///     "WSPPAGES" u32 pageSize u32 depth u64 fileSize SHA256[32] u64 pageHash[pageCount]
///     checksum[8] (the first 8 bytes of the SHA-256 of everything before it)
///
/// A cache: rewritten in place without fsync (a new inode and a rename per metric and run
/// cost more than the rest of a first backup's state); a torn, short or damaged file reads
/// as none, which only costs a full version.
public struct PageIndex: Equatable, Sendable {
    public var pageSize: Int
    /// 0 for a full version, n for the n-th delta since the last full one.
    public var depth: Int
    public var fileSize: Int
    /// Raw SHA-256 of the version's content.
    public var hash: [UInt8]
    /// The first 8 bytes of each page's SHA-256 (`PageDelta.pageHashes`).
    public var pages: [UInt64]

    public static let magic: [UInt8] = Array("WSPPAGES".utf8)
    static let headerBytes = 8 + 4 + 4 + 8 + 32

    public init(pageSize: Int, depth: Int, fileSize: Int, hash: [UInt8], pages: [UInt64]) {
        self.pageSize = pageSize
        self.depth = depth
        self.fileSize = fileSize
        self.hash = hash
        self.pages = pages
    }

    public var encoded: [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(PageIndex.headerBytes + 8 * pages.count + 8)
        out += PageIndex.magic
        out.appendLE32(UInt32(pageSize))
        out.appendLE32(UInt32(depth))
        out.appendLE64(UInt64(fileSize))
        out += hash
        for p in pages { out.appendLE64(p) }
        out += Digest.hash(.sha256, out).prefix(8)
        return out
    }

    /// The index `bytes` hold, or nil unless magic, length and checksum are right.
    public static func decode(_ bytes: [UInt8]) -> PageIndex? {
        guard bytes.count >= headerBytes + 8, Array(bytes[0..<8]) == magic else { return nil }
        return bytes.withUnsafeBytes { b -> PageIndex? in
            let pageSize = Int(b.loadLE32(8)), depth = Int(b.loadLE32(12))
            let fileSize = b.loadLE64(16)
            guard pageSize > 0, fileSize < 1 << 40 else { return nil }
            let count = (Int(fileSize) + pageSize - 1) / pageSize
            guard bytes.count == headerBytes + 8 * count + 8 else { return nil }
            let body = UnsafeRawBufferPointer(rebasing: b[0..<(bytes.count - 8)])
            guard Digest.hash(.sha256, body).prefix(8).elementsEqual(b[(bytes.count - 8)...]) else { return nil }
            let pages = (0..<count).map { UInt64(littleEndian: b.loadUnaligned(fromByteOffset: headerBytes + 8 * $0, as: UInt64.self)) }
            return PageIndex(pageSize: pageSize, depth: depth, fileSize: Int(fileSize), hash: Array(b[24..<56]), pages: pages)
        }
    }

    /// Where the index of `metric` lives under the state directory `stateDir`.
    public static func path(stateDir: String, metric: String) -> String {
        let h = Digest.sha256Hex(Array(metric.utf8))
        return Path.join(Path.join(Path.join(stateDir, "pages"), String(h.prefix(2))), String(h.prefix(32)))
    }

    /// The index of `metric`, or nil when there is none or it is damaged.
    public static func read(stateDir: String, metric: String) -> PageIndex? {
        guard let fd = try? FileDescriptor.open(path(stateDir: stateDir, metric: metric), O_RDONLY),
              let bytes = try? fd.closeAfter({ try fd.readAll() }) else { return nil }
        return decode(bytes)
    }

    /// Replaces the index of `metric` in place (not synced: a cache).
    public func write(stateDir: String, metric: String) throws {
        let path = PageIndex.path(stateDir: stateDir, metric: metric)
        let fd: FileDescriptor
        do {
            fd = try FileDescriptor.open(path, O_WRONLY | O_CREAT, mode: 0o600)
        } catch Errno.noSuchFileOrDirectory {
            try Path.makeDirectories(Path.directory(of: path))
            fd = try FileDescriptor.open(path, O_WRONLY | O_CREAT, mode: 0o600)
        }
        try fd.closeAfter { try encoded.withUnsafeBytes { try fd.overwrite(with: $0) } }
    }
}
