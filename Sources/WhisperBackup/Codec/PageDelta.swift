/// A delta version's content: the pages of a whisper file that differ from its base version.
///
/// Whisper archives are fixed-size rings written in place, so a day of carbon writes touches a
/// few pages of each archive; a delta holds those pages whole. Layout (little-endian), gzipped
/// as one standard member in the store:
///
///     "WSPDELTA" u32 format(1) u32 pageSize u64 baseSize u64 newSize
///     baseSHA256[32] newSHA256[32] u32 pageCount  u32 pageIndex[pageCount]  page data...
///
/// Page `i`'s data is bytes `[i*pageSize, min((i+1)*pageSize, newSize))` of the new file.
/// Applying: the base truncated or zero-extended to newSize, then every page copied in; the
/// base must hash to baseSHA256 before and the result to newSHA256 after.
public struct PageDeltaError: Error, CustomStringConvertible {
    public var reason: String
    init(_ reason: String) { self.reason = reason }
    public var description: String { reason }
}

public enum PageDelta {
    public static let magic: [UInt8] = Array("WSPDELTA".utf8)
    public static let format: UInt32 = 1
    /// 4 KiB: a day of 1-minute points (17 KB) is five pages; coarser archives change one.
    public static let pageSize = 4096
    /// A delta whose pages hold more than this share of the file is stored as a full version:
    /// it would save little, and lengthens the chain a restore walks.
    public static let maxFraction = 0.5

    public struct Header: Equatable, Sendable {
        public var pageSize: Int
        public var baseSize: Int
        public var newSize: Int
        public var baseHash: [UInt8]
        public var newHash: [UInt8]
        public var pages: [Int]
        /// Where the page data starts.
        public var dataOffset: Int

        public static let fixedBytes = 8 + 4 + 4 + 8 + 8 + 32 + 32 + 4

        /// Parses a header from the first bytes of a delta (all of them, or at least
        /// `fixedBytes` plus the page index).
        public static func parse(_ bytes: UnsafeRawBufferPointer) throws -> Header {
            guard bytes.count >= fixedBytes, Array(bytes[0..<8]) == PageDelta.magic else {
                throw PageDeltaError("not a delta version (no WSPDELTA header)")
            }
            let format = bytes.loadLE32(8)
            guard format == PageDelta.format else { throw PageDeltaError("delta format \(format) is not known to this version") }
            let pageSize = Int(bytes.loadLE32(12))
            let baseSize = bytes.loadLE64(16), newSize = bytes.loadLE64(24)
            guard pageSize > 0, pageSize % 512 == 0, baseSize < 1 << 40, newSize < 1 << 40 else {
                throw PageDeltaError("delta header out of range (page size \(pageSize), sizes \(baseSize), \(newSize))")
            }
            let count = Int(bytes.loadLE32(96))
            let pageCount = (Int(newSize) + pageSize - 1) / pageSize
            guard count <= pageCount, bytes.count >= fixedBytes + 4 * count else {
                throw PageDeltaError("delta header names \(count) pages of a \(newSize)-byte file")
            }
            var pages: [Int] = []
            pages.reserveCapacity(count)
            for i in 0..<count {
                let p = Int(bytes.loadLE32(fixedBytes + 4 * i))
                guard p < pageCount, pages.last.map({ $0 < p }) ?? true else {
                    throw PageDeltaError("delta page index is not ascending within the file")
                }
                pages.append(p)
            }
            return Header(pageSize: pageSize, baseSize: Int(baseSize), newSize: Int(newSize),
                          baseHash: Array(bytes[32..<64]), newHash: Array(bytes[64..<96]), pages: pages,
                          dataOffset: fixedBytes + 4 * count)
        }

        /// Bytes of page data that follow the header.
        public var dataBytes: Int {
            pages.reduce(0) { $0 + min(pageSize, newSize - $1 * pageSize) }
        }
    }

    /// The first 8 bytes of the SHA-256 of every page (the last one may be short).
    public static func pageHashes(_ bytes: UnsafeRawBufferPointer, pageSize: Int = PageDelta.pageSize) -> [UInt64] {
        var out: [UInt64] = []
        out.reserveCapacity((bytes.count + pageSize - 1) / pageSize)
        // Most pages of a young whisper file are zeros (preallocated, empty slots): their hash
        // is known, and finding a page zero costs a twentieth of hashing it.
        let zero = pageSize == PageDelta.pageSize ? zeroPageHash : zeroHash(pageSize)
        var start = 0
        while start < bytes.count {
            let page = UnsafeRawBufferPointer(rebasing: bytes[start..<min(start + pageSize, bytes.count)])
            out.append(page.count == pageSize && isZero(page) ? zero : hash(page))
            start += pageSize
        }
        return out
    }

    /// The page hash of a zero page of `pageSize` bytes, hashed once per process.
    static let zeroPageHash = zeroHash(pageSize)

    static func zeroHash(_ size: Int) -> UInt64 {
        [UInt8](repeating: 0, count: size).withUnsafeBytes { hash($0) }
    }

    /// The first 8 bytes of the SHA-256 of `page`.
    static func hash(_ page: UnsafeRawBufferPointer) -> UInt64 {
        Digest.hash(.sha256, page).withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) }
    }

    static func isZero(_ page: UnsafeRawBufferPointer) -> Bool {
        var acc: UInt64 = 0
        var i = 0
        while i + 8 <= page.count {
            acc |= page.loadUnaligned(fromByteOffset: i, as: UInt64.self)
            i += 8
        }
        while i < page.count { acc |= UInt64(page[i]); i += 1 }
        return acc == 0
    }

    /// Pages of the new file that differ from the base's: every page whose hash differs, and
    /// every page past the base's last.
    public static func changedPages(old: [UInt64], new: [UInt64]) -> [Int] {
        (0..<new.count).filter { $0 >= old.count || old[$0] != new[$0] }
    }

    /// Raw bytes that `pages` of a file of `size` bytes hold.
    public static func bytes(of pages: [Int], fileSize size: Int, pageSize: Int = PageDelta.pageSize) -> Int {
        pages.reduce(0) { $0 + min(pageSize, size - $1 * pageSize) }
    }

    /// The delta (uncompressed) that turns a base of `baseSize` bytes hashing to `baseHash`
    /// into `new`, which hashes to `newHash`.
    public static func encode(new: UnsafeRawBufferPointer, baseSize: Int, baseHash: [UInt8], newHash: [UInt8],
                              pages: [Int], pageSize: Int = PageDelta.pageSize) -> [UInt8] {
        precondition(baseHash.count == 32 && newHash.count == 32)
        var out: [UInt8] = []
        out.reserveCapacity(Header.fixedBytes + 4 * pages.count + bytes(of: pages, fileSize: new.count, pageSize: pageSize))
        out += magic
        out.appendLE32(format)
        out.appendLE32(UInt32(pageSize))
        out.appendLE64(UInt64(baseSize))
        out.appendLE64(UInt64(new.count))
        out += baseHash
        out += newHash
        out.appendLE32(UInt32(pages.count))
        for p in pages { out.appendLE32(UInt32(p)) }
        for p in pages {
            out += UnsafeRawBufferPointer(rebasing: new[(p * pageSize)..<min((p + 1) * pageSize, new.count)])
        }
        return out
    }

    /// Applies `delta` to `file`, which holds the base: checks the base's size and, with
    /// `hashes`, its SHA-256 before and the result's after. (A chain checks only the SHA-256
    /// of its end, and every step's when that fails: each step's two hashes cost two passes
    /// over the whole file, and a chain of 15 deltas would cost 30.)
    public static func apply(_ delta: [UInt8], to file: inout [UInt8], hashes: Bool = true) throws {
        let header = try delta.withUnsafeBytes { try Header.parse($0) }
        guard delta.count == header.dataOffset + header.dataBytes else {
            throw PageDeltaError("delta holds \(delta.count - header.dataOffset) bytes of page data, its header says \(header.dataBytes)")
        }
        guard file.count == header.baseSize, !hashes || Digest.hash(.sha256, file) == header.baseHash else {
            throw PageDeltaError("delta does not apply to this base (it wants \(header.baseSize) bytes hashing to \(Hex.encode(header.baseHash).prefix(12))…)")
        }
        if header.newSize < file.count {
            file.removeLast(file.count - header.newSize)
        } else if header.newSize > file.count {
            file += [UInt8](repeating: 0, count: header.newSize - file.count)
        }
        var at = header.dataOffset
        file.withUnsafeMutableBytes { out in
            delta.withUnsafeBytes { d in
                for p in header.pages {
                    let start = p * header.pageSize, n = min(header.pageSize, header.newSize - start)
                    out.baseAddress!.advanced(by: start).copyMemory(from: d.baseAddress!.advanced(by: at), byteCount: n)
                    at += n
                }
            }
        }
        guard !hashes || Digest.hash(.sha256, file) == header.newHash else {
            throw PageDeltaError("delta applied, but the result does not hash to \(Hex.encode(header.newHash).prefix(12))…")
        }
    }
}

extension UnsafeRawBufferPointer {
    func loadLE32(_ offset: Int) -> UInt32 { UInt32(littleEndian: loadUnaligned(fromByteOffset: offset, as: UInt32.self)) }
    func loadLE64(_ offset: Int) -> UInt64 { UInt64(littleEndian: loadUnaligned(fromByteOffset: offset, as: UInt64.self)) }
}

extension Array where Element == UInt8 {
    mutating func appendLE32(_ v: UInt32) { Swift.withUnsafeBytes(of: v.littleEndian) { append(contentsOf: $0) } }
    mutating func appendLE64(_ v: UInt64) { Swift.withUnsafeBytes(of: v.littleEndian) { append(contentsOf: $0) } }
}
