import XCTest
@testable import WhisperBackup

final class CodecTests: XCTestCase {
    func testGzipRoundTripAndMultiMember() throws {
        let a = Array((0..<100_000).map { UInt8(truncatingIfNeeded: $0 * 7 / 3) })
        let b = Array("second member".utf8)
        let dir = NSTemporaryDirectory() + "codec-\(getpid())"
        try Path.makeDirectories(dir)
        let path = dir + "/x.gz"
        try AtomicFile.write(path, bytes: Gzip.compress(a) + Gzip.compress(b, level: 1), placement: .replace)
        XCTAssertEqual(try Gzip.decompressFile(path), a + b)
    }

    func testGzipRejectsCorruption() throws {
        var gz = Gzip.compress(Array(repeating: 42, count: 10_000) + Array(0...255))
        let dir = NSTemporaryDirectory() + "codec-\(getpid())"
        try Path.makeDirectories(dir)
        let path = dir + "/bad.gz"
        try AtomicFile.write(path, bytes: Array(gz.dropLast(5)), placement: .replace)
        XCTAssertThrowsError(try Gzip.decompressFile(path))
        gz[gz.count - 6] ^= 1   // CRC
        try AtomicFile.write(path, bytes: gz, placement: .replace)
        XCTAssertThrowsError(try Gzip.decompressFile(path))
        try AtomicFile.write(path, bytes: [], placement: .replace)
        XCTAssertThrowsError(try Gzip.decompressFile(path))
    }

    func testDigestsMatchKnownVectors() {
        let abc = Array("abc".utf8)
        XCTAssertEqual(Hex.encode(Digest.hash(.sha256, abc)), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        XCTAssertEqual(Hex.encode(Digest.hash(.sha1, abc)), "a9993e364706816aba3e25717850c26c9cd0d89d")
        XCTAssertEqual(Hex.encode(Digest.hash(.md5, abc)), "900150983cd24fb0d6963f7d28e17f72")
        // RFC 4231 test case 2
        XCTAssertEqual(Hex.encode(Digest.hmacSHA256(key: Array("Jefe".utf8), Array("what do ya want for nothing?".utf8))),
                       "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843")
    }

    func testRecordsSplitOnTabsOnly() {
        let r = Record(line: "a b.c\tx\t\ty")
        XCTAssertEqual(r.metric, "a b.c")
        XCTAssertEqual(r[1], "x")
        XCTAssertNil(r[2])
        XCTAssertEqual(r[3], "y")
        XCTAssertNil(r[9])
        XCTAssertEqual(r.line, "a b.c\tx\t\ty\n")
    }

    func testByteCounts() {
        XCTAssertEqual(ByteCount.parse("64K"), 65536)
        XCTAssertEqual(ByteCount.parse("1G"), 1 << 30)
        XCTAssertEqual(ByteCount.parse("1.5MiB"), 1572864)
        XCTAssertNil(ByteCount.parse("lots"))
    }
}
