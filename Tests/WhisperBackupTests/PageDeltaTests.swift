import XCTest
@testable import WhisperBackup

final class PageDeltaTests: XCTestCase {
    func sha(_ b: [UInt8]) -> [UInt8] { Digest.hash(.sha256, b) }

    func delta(from old: [UInt8], to new: [UInt8], pageSize: Int = 4096) -> (bytes: [UInt8], pages: [Int]) {
        let oldHashes = old.withUnsafeBytes { PageDelta.pageHashes($0, pageSize: pageSize) }
        let newHashes = new.withUnsafeBytes { PageDelta.pageHashes($0, pageSize: pageSize) }
        let pages = PageDelta.changedPages(old: oldHashes, new: newHashes)
        let d = new.withUnsafeBytes {
            PageDelta.encode(new: $0, baseSize: old.count, baseHash: sha(old), newHash: sha(new), pages: pages, pageSize: pageSize)
        }
        return (d, pages)
    }

    func testChangedPagesOnlyAndExactRoundTrip() throws {
        var rng = SystemRandomNumberGenerator()
        let old = (0..<(4096 * 10 + 100)).map { _ in UInt8.random(in: 0...255, using: &rng) }
        var new = old
        new[5] ^= 1                  // page 0
        new[4096 * 7 + 4095] ^= 0xff // page 7
        let (d, pages) = delta(from: old, to: new)
        XCTAssertEqual(pages, [0, 7])
        XCTAssertEqual(d.count, PageDelta.Header.fixedBytes + 8 + 2 * 4096)
        var file = old
        try PageDelta.apply(d, to: &file)
        XCTAssertEqual(file, new)
    }

    func testGrowingShrinkingAndPartialLastPage() throws {
        let old = [UInt8](repeating: 1, count: 4096 * 3 + 10)
        for newSize in [0, 5, 4096, 4096 * 3 + 10, 4096 * 3 + 11, 4096 * 5 + 1] {
            var new = [UInt8](repeating: 1, count: newSize)
            if newSize > 0 { new[newSize - 1] = 9 }
            let (d, _) = delta(from: old, to: new)
            var file = old
            try PageDelta.apply(d, to: &file)
            XCTAssertEqual(file, new, "size \(newSize)")
        }
        // Equal files: no page.
        XCTAssertEqual(delta(from: old, to: old).pages, [])
    }

    func testWrongBaseTruncatedDataAndBadHeadersAreRefused() throws {
        let old = [UInt8](repeating: 3, count: 9000)
        var new = old
        new[8999] = 4
        let (d, _) = delta(from: old, to: new)
        var other = old
        other[0] = 7
        XCTAssertThrowsError(try PageDelta.apply(d, to: &other)) { XCTAssert("\($0)".contains("does not apply to this base")) }
        XCTAssertEqual(other[0], 7, "a refused delta leaves the base as it was")
        var file = old
        XCTAssertThrowsError(try PageDelta.apply(Array(d.dropLast()), to: &file)) { XCTAssert("\($0)".contains("page data")) }
        var tampered = d
        tampered[tampered.count - 1] ^= 1
        file = old
        XCTAssertThrowsError(try PageDelta.apply(tampered, to: &file)) { XCTAssert("\($0)".contains("does not hash to")) }
        XCTAssertThrowsError(try [UInt8](repeating: 0, count: 200).withUnsafeBytes { try PageDelta.Header.parse($0) }) {
            XCTAssert("\($0)".contains("WSPDELTA"))
        }
        var descending = d
        descending[PageDelta.Header.fixedBytes - 4] = 3   // count 3 with one index
        XCTAssertThrowsError(try descending.withUnsafeBytes { try PageDelta.Header.parse($0) })
    }

    func testPageHashesAreStableAndShort() {
        let a = [UInt8](repeating: 0, count: 4096 * 2 + 1)
        let h = a.withUnsafeBytes { PageDelta.pageHashes($0) }
        XCTAssertEqual(h.count, 3)
        XCTAssertEqual(h[0], h[1])
        XCTAssertNotEqual(h[1], h[2])
    }

    /// Zero pages take a shortcut to the same hash: every page hashes as its SHA-256 says,
    /// zero or not, whole or the last part of one.
    func testZeroPagesHashAsTheirSHA256() {
        var bytes = [UInt8](repeating: 0, count: 3 * PageDelta.pageSize + 100)
        bytes[PageDelta.pageSize + 7] = 1   // page 1 not zero; pages 0 and 2 zero, page 3 a zero tail
        let hashes = bytes.withUnsafeBytes { PageDelta.pageHashes($0) }
        XCTAssertEqual(hashes.count, 4)
        for (i, h) in hashes.enumerated() {
            let page = Array(bytes[(i * PageDelta.pageSize)..<min((i + 1) * PageDelta.pageSize, bytes.count)])
            XCTAssertEqual(h, Digest.hash(.sha256, page).withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) }, "page \(i)")
        }
        XCTAssertEqual(hashes[0], hashes[2])
        XCTAssertNotEqual(hashes[0], hashes[1])
    }
}
