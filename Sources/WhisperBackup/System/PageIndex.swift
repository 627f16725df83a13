#if canImport(Glibc)
import Glibc
#endif

/// What `wsp-snap` remembers of a metric's last snapshot, so the next one can be stored as a
/// delta without downloading anything: the hash of every page of the content, its SHA-256,
/// and how many deltas lead to it from the last full version. Kept in the state directory by
/// `PageIndexes`. Encoded (little-endian):
///
///     "WSPPAGES" u32 pageSize u32 depth u64 fileSize SHA256[32] u64 pageHash[pageCount]
///     checksum[8] (the first 8 bytes of the SHA-256 of everything before it)
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

    /// Where earlier versions kept the index of `metric`, a file a metric:
    /// `STATE/pages/XX/HASH32` (XX: the first 2 hex digits of the SHA-256 of the metric's
    /// name, HASH32 its first 32). Still read (`PageIndexes`), never written.
    public static func legacyPath(stateDir: String, metric: String) -> String {
        let h = Digest.sha256Hex(Array(metric.utf8))
        return Path.join(Path.join(Path.join(stateDir, "pages"), String(h.prefix(2))), String(h.prefix(32)))
    }

    /// The index in the file at `path`, or nil when there is none or it is damaged.
    static func read(path: String) -> PageIndex? {
        guard let fd = try? FileDescriptor.open(path, O_RDONLY),
              let bytes = try? fd.closeAfter({ try fd.readAll() }) else { return nil }
        return decode(bytes)
    }
}

/// The page indexes of a state directory, `STATE/pageindex/NAME`, one file for the metrics of a
/// whisper directory and of its sibling directories: NAME is the parent of the metric's
/// directory (`PageIndexes.fileName`), named as the state's journals are
/// (`BackupState.shardName`). A file a metric, as the first versions kept them, made a first
/// backup create an inode (and a block) per metric for its index alone, and a file per
/// directory still one per 1.14 metrics on gen-tree.py's tree; on this machine's ext4 an inode
/// allocation after many deletions is the costliest step of a first backup. A file that has
/// grown past `fileCap` takes no more records: they go to the file of the metric's own
/// directory (where the previous version kept them all), so no file grows with the width of
/// a tree. Each file is a sequence of records, a later one of a metric overriding earlier ones:
///
///     "WPI1" u32 nameBytes u32 indexBytes NAME INDEX checksum[8]
///
/// (INDEX: `PageIndex.encoded`; checksum: the first 8 bytes of the SHA-256 of the record
/// before it; little-endian). A record is appended with one `write(2)` (O_APPEND) under a
/// shared lock on the file that compaction takes exclusively, so processes snapping metrics
/// of one directory never interleave inside a record, and one that finds the file replaced by
/// a compaction opens it again. A cache, not synced: a torn or damaged record reads as none,
/// which only costs a full version (a delta names the SHA-256 of what it produces, and every
/// restore checks it). Since a metric's record may be in either of two files, a reader takes
/// the one that describes the content it asks for (`read(metric:hash:)`). A file holding more
/// than twice its live records, or damage, is compacted when it is read. Indexes in the files
/// of earlier versions are read when neither file has the metric's: a directory's file is one
/// of the two; a metric's file is removed once replaced.
public final class PageIndexes {
    public let stateDir: String
    /// The files open (at most two: a metric's and its directory's), each with its descriptor
    /// (nil: no file yet), where the last record of each of its metrics starts and how long it
    /// is, and how far it reaches.
    private final class OpenFile {
        let name: String
        var fd: FileDescriptor?
        var records: [[UInt8]: (offset: Int64, length: Int)] = [:]
        var size: Int64 = 0
        init(name: String) { self.name = name }
        deinit { fd?.close() }
    }
    private var files: [OpenFile] = []
    /// The earlier version's file last read, removed when its metric's index is written.
    private var legacyRead: String?

    static let magic: [UInt8] = Array("WPI1".utf8)
    static let headerBytes = 12
    static let checksumBytes = 8
    /// The size past which a file takes no more records (about 1,800 indexes of small files).
    static let fileCap: Int64 = 256 * 1024

    public init(stateDir: String) { self.stateDir = stateDir }

    var dir: String { Path.join(stateDir, "pageindex") }

    /// The file of `metric`: the parent of its directory ("@" at the top), as its journal.
    static func fileName(_ metric: String) -> String { BackupState.siblingsName(metric) }

    /// The index of `metric` (with `hash`, the one of the content of that SHA-256, in hex), or
    /// nil when there is none or it is damaged.
    public func read(metric: String, hash: String? = nil) -> PageIndex? {
        let name = Array(metric.utf8)
        func wanted(_ index: PageIndex) -> Bool { hash == nil || Hex.encode(index.hash) == hash }
        let (directory, shared) = BackupState.journals(metric)
        for file in (shared.map { [$0] } ?? []) + [directory] {
            guard let f = try? openFile(file, create: false), let fd = f.fd, let r = f.records[name] else { continue }
            var bytes = [UInt8](repeating: 0, count: r.length)
            guard (try? bytes.withUnsafeMutableBytes { try fd.read(into: $0, at: r.offset) }) == r.length,
                  let (n, index, _) = PageIndexes.parse(bytes[...]), n.elementsEqual(name) else { continue }
            if wanted(index) { return index }
        }
        let legacy = PageIndex.legacyPath(stateDir: stateDir, metric: metric)
        guard let index = PageIndex.read(path: legacy), wanted(index) else { return nil }
        legacyRead = legacy
        return index
    }

    /// Records `index` as the index of `metric`: in its file, or in its directory's once that
    /// is past `fileCap`.
    public func write(_ index: PageIndex, metric: String) throws {
        let name = Array(metric.utf8)
        let record = PageIndexes.record(name: name, index: index.encoded)
        for _ in 0..<100 {
            var f = try openFile(PageIndexes.fileName(metric), create: true)
            if f.size >= PageIndexes.fileCap { f = try openFile(BackupState.shardName(metric), create: true) }
            guard let fd = f.fd else { break }
            if try FileLock.appendIfCurrent(record, to: fd) {
                // Where this descriptor's append left its offset: just past the record.
                f.size = try system_tell(fd.rawValue, path: fd.path)
                f.records[name] = (f.size - Int64(record.count), record.count)
                let legacy = PageIndex.legacyPath(stateDir: stateDir, metric: metric)
                if legacyRead == legacy {
                    _ = try? system_unlink(legacy)
                    legacyRead = nil
                }
                return
            }
            files.removeAll { $0 === f }   // replaced by a compaction: open the new file
        }
        throw Errno(EAGAIN, call: "append", path: Path.join(dir, PageIndexes.fileName(metric)))
    }

    /// The file `name`, open, with where its records are; with `create`, a missing file is
    /// created. A file with damage or more than twice its live records is compacted first.
    private func openFile(_ name: String, create: Bool) throws -> OpenFile {
        if let f = files.first(where: { $0.name == name }), f.fd != nil || !create {
            // The least recently used one goes first: the file siblings share stays open
            // while the directories' files take turns.
            files.removeAll { $0 === f }
            files.append(f)
            return f
        }
        files.removeAll { $0.name == name }
        if files.count >= 2 { files.removeFirst() }
        let f = OpenFile(name: name)
        files.append(f)
        let path = Path.join(dir, name)
        let flags = O_RDWR | O_APPEND | (create ? O_CREAT : 0)
        do {
            f.fd = try FileDescriptor.open(path, flags, mode: 0o600)
        } catch Errno.noSuchFileOrDirectory where create {
            try Path.makeDirectories(dir)
            f.fd = try FileDescriptor.open(path, flags, mode: 0o600)
        } catch Errno.noSuchFileOrDirectory {
            return f
        }
        guard let opened = f.fd else { return f }
        let (count, damaged) = walk(opened, into: f)
        if damaged || BackupState.needsCompaction(lines: count, live: f.records.count) {
            PageIndexes.compact(path)
            opened.close()
            f.fd = nil
            f.records = [:]
            f.fd = try? FileDescriptor.open(path, flags, mode: 0o600)
            if let fd = f.fd { _ = walk(fd, into: f) }
        }
        return f
    }

    /// Reads the records' headers into `records`; returns how many records there are and
    /// whether the file is damaged (a header that is not one, or a record cut short).
    private func walk(_ fd: FileDescriptor, into f: OpenFile) -> (count: Int, damaged: Bool) {
        guard let size = try? Int64(fd.stat().st_size) else { return (0, true) }
        f.size = size
        var buffer = [UInt8](repeating: 0, count: 1 << 16)
        var bufferStart: Int64 = 0, bufferCount = 0
        var offset: Int64 = 0, count = 0
        while offset < size {
            guard offset + Int64(PageIndexes.headerBytes) <= size else { return (count, true) }
            // The header and the name, from the buffer or a read of the next 64 KiB.
            func at(_ o: Int64, _ n: Int) -> ArraySlice<UInt8>? {
                if o < bufferStart || o + Int64(n) > bufferStart + Int64(bufferCount) {
                    if n > buffer.count { buffer = [UInt8](repeating: 0, count: n) }
                    bufferStart = o
                    bufferCount = (try? buffer.withUnsafeMutableBytes { try fd.read(into: $0, at: o) }) ?? 0
                    if n > bufferCount { return nil }
                }
                let i = Int(o - bufferStart)
                return buffer[i..<(i + n)]
            }
            guard let header = at(offset, PageIndexes.headerBytes), header.prefix(4).elementsEqual(PageIndexes.magic) else { return (count, true) }
            let (nameBytes, indexBytes) = header.withUnsafeBytes { (Int($0.loadLE32(4)), Int($0.loadLE32(8))) }
            let length = PageIndexes.headerBytes + nameBytes + indexBytes + PageIndexes.checksumBytes
            guard offset + Int64(length) <= size, let name = at(offset + Int64(PageIndexes.headerBytes), nameBytes) else { return (count, true) }
            f.records[Array(name)] = (offset, length)
            count += 1
            offset += Int64(length)
        }
        return (count, false)
    }

    /// One record: header, name, index, checksum.
    static func record(name: [UInt8], index: [UInt8]) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(headerBytes + name.count + index.count + checksumBytes)
        out += magic
        out.appendLE32(UInt32(name.count))
        out.appendLE32(UInt32(index.count))
        out += name
        out += index
        out += Digest.hash(.sha256, out).prefix(checksumBytes)
        return out
    }

    /// The name, index and length of the record that `bytes` starts with, if it is whole and
    /// sound.
    static func parse(_ bytes: ArraySlice<UInt8>) -> (name: ArraySlice<UInt8>, index: PageIndex, length: Int)? {
        guard bytes.count >= headerBytes, bytes.prefix(4).elementsEqual(magic) else { return nil }
        let (nameBytes, indexBytes) = bytes.withUnsafeBytes { (Int($0.loadLE32(4)), Int($0.loadLE32(8))) }
        let length = headerBytes + nameBytes + indexBytes + checksumBytes
        guard length <= bytes.count else { return nil }
        let s = bytes.startIndex, end = s + length - checksumBytes
        guard bytes[s..<end].withUnsafeBytes({ Digest.hash(.sha256, $0) }).prefix(checksumBytes).elementsEqual(bytes[end..<(s + length)]),
              let index = PageIndex.decode(Array(bytes[(s + headerBytes + nameBytes)..<end])) else { return nil }
        return (bytes[(s + headerBytes)..<(s + headerBytes + nameBytes)], index, length)
    }

    /// Rewrites the file at `path` with the last sound record of each metric, under an
    /// exclusive lock (no append is lost), replaced whole (a crash leaves the old file or the
    /// new one). Damage is skipped: the records after it are found by their header.
    static func compact(_ path: String) {
        guard let fd = try? FileDescriptor.open(path, O_RDWR) else { return }
        fd.closeAfter {
            guard (try? FileLock.lock(fd, .exclusive, timeout: 60)) != nil else { return }
            defer { FileLock.unlock(fd) }
            guard let now = try? system_stat(path), let mine = try? fd.stat(), now.st_ino == mine.st_ino,
                  let bytes = try? fd.readAll(sizeHint: Int(mine.st_size) + 1) else { return }
            var last: [[UInt8]: Range<Int>] = [:]
            var i = 0, count = 0, damaged = false
            while i < bytes.count {
                if let (name, _, length) = parse(bytes[i...]) {
                    last[Array(name)] = i..<(i + length)
                    i += length
                    count += 1
                } else {
                    i += 1   // damage: on to the next header
                    damaged = true
                }
            }
            // A reader may have seen a record another process was still appending: whole now.
            guard damaged || BackupState.needsCompaction(lines: count, live: last.count) else { return }
            var out: [UInt8] = []
            for r in last.values.sorted(by: { $0.lowerBound < $1.lowerBound }) { out += bytes[r] }
            // Not synced: a cache (see above).
            try? AtomicFile.write(path, bytes: out, mode: 0o600, placement: .replace, durable: false)
        }
    }
}
