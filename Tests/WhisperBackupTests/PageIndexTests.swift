import XCTest
@testable import WhisperBackup

final class PageIndexTests: XCTestCase {
    func tempDir() throws -> String {
        let dir = "/tmp/wsp-pages-test.\(UInt64.random(in: 0...UInt64.max))"
        try Path.makeDirectories(dir)
        addTeardownBlock { BackupStateTests.remove(dir) }
        return dir
    }

    func sample(size: Int = 4096 * 3 + 100, depth: Int = 2) -> PageIndex {
        let content = (0..<size).map { UInt8(truncatingIfNeeded: $0 * 7) }
        let pages = content.withUnsafeBytes { PageDelta.pageHashes($0) }
        return PageIndex(pageSize: PageDelta.pageSize, depth: depth, fileSize: size, hash: Digest.hash(.sha256, content), pages: pages)
    }

    func testRoundTripThroughTheStateDirectory() throws {
        let dir = try tempDir()
        let index = sample()
        XCTAssertEqual(index.pages.count, 4)
        XCTAssertNil(PageIndex.read(stateDir: dir, metric: "a.b"))
        try index.write(stateDir: dir, metric: "a.b")
        XCTAssertEqual(PageIndex.read(stateDir: dir, metric: "a.b"), index)
        XCTAssertNil(PageIndex.read(stateDir: dir, metric: "a.c"))
        // STATE/pages/XX/HASH32, named by the SHA-256 of the metric's name.
        let h = Digest.sha256Hex(Array("a.b".utf8))
        XCTAssertEqual(PageIndex.path(stateDir: dir, metric: "a.b"), "\(dir)/pages/\(h.prefix(2))/\(h.prefix(32))")
        XCTAssertEqual(index.encoded.count, 8 + 4 + 4 + 8 + 32 + 8 * 4 + 8)
        // Replaced whole, in place (no new inode per run); an empty file has no page.
        let inode = try system_stat(PageIndex.path(stateDir: dir, metric: "a.b")).st_ino
        let empty = sample(size: 0, depth: 0)
        try empty.write(stateDir: dir, metric: "a.b")
        XCTAssertEqual(PageIndex.read(stateDir: dir, metric: "a.b"), empty)
        XCTAssertEqual(empty.pages, [])
        XCTAssertEqual(Int(try system_stat(PageIndex.path(stateDir: dir, metric: "a.b")).st_size), empty.encoded.count)
        XCTAssertEqual(try system_stat(PageIndex.path(stateDir: dir, metric: "a.b")).st_ino, inode)
    }

    func testTornShortAndGarbageFilesReadAsNone() throws {
        let bytes = sample().encoded
        XCTAssertEqual(PageIndex.decode(bytes), sample())
        for cut in [0, 7, 8, 56, 63, bytes.count - 8, bytes.count - 1] {
            XCTAssertNil(PageIndex.decode(Array(bytes.prefix(cut))), "torn at \(cut)")
        }
        XCTAssertNil(PageIndex.decode(bytes + [0]), "a byte too many")
        XCTAssertNil(PageIndex.decode([UInt8](repeating: 0x41, count: bytes.count)), "garbage")
        var wrongMagic = bytes
        wrongMagic[0] = UInt8(ascii: "X")
        XCTAssertNil(PageIndex.decode(wrongMagic))
        // A torn write on disk: the file reads as none.
        let dir = try tempDir()
        try sample().write(stateDir: dir, metric: "m")
        try AtomicFile.write(PageIndex.path(stateDir: dir, metric: "m"), bytes: Array(bytes.prefix(60)), placement: .replace, durable: false)
        XCTAssertNil(PageIndex.read(stateDir: dir, metric: "m"))
    }

    func testChecksumCoversEveryByte() throws {
        let bytes = sample().encoded
        // Every flipped bit of the header, hashes or checksum is caught.
        for i in stride(from: 8, to: bytes.count, by: 5) {
            var b = bytes
            b[i] ^= 0x10
            XCTAssertNil(PageIndex.decode(b), "byte \(i) flipped")
        }
        // A size that implies another page count is refused by the length alone.
        var b = bytes
        b[17] = b[17] &+ 0x10   // fileSize + 4096
        XCTAssertNil(PageIndex.decode(b))
    }
}
