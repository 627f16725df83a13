import XCTest
@testable import WhisperBackup

/// The whisper format as whisper 1.1.10 writes it; expected bytes come from `whisper.create`
/// and `whisper.update_many` (see the comments).
final class WhisperFormatTests: XCTestCase {
    static func hex(_ s: String) -> [UInt8] {
        var out: [UInt8] = []
        var i = s.startIndex
        while i < s.endIndex {
            let j = s.index(i, offsetBy: 2)
            out.append(UInt8(s[i..<j], radix: 16)!)
            i = j
        }
        return out
    }

    // whisper.create('t.wsp', [(60, 5), (300, 4)], xFilesFactor=0.3, aggregationMethod='max')
    static let createdHeader = hex("00000004000004b03e99999a00000002000000280000003c00000005000000640000012c00000004")
    static let now = 1_795_000_000

    func testHeaderEncodesAsWhisperCreateWritesIt() throws {
        let h = WhisperHeader(aggregation: .max, xFilesFactor: 0.3, archives: [(60, 5), (300, 4)])
        XCTAssertEqual(h.encoded(), Self.createdHeader)
        XCTAssertEqual(h.fileSize, 148)
        let file = WhisperFile(header: h)
        XCTAssertEqual(file.bytes.count, 148)
        let parsed = try WhisperHeader(file.bytes)
        XCTAssertEqual(parsed, h)
        XCTAssertEqual(parsed.archives[1], ArchiveInfo(offset: 100, secondsPerPoint: 300, points: 4))
        XCTAssertEqual(parsed.maxRetention, 1200)
        XCTAssertEqual(parsed.xFilesFactor, 0.3)
    }

    // whisper.update_many('t.wsp', [(now - 60 * i, float(i)) for i in 1...4], now=now) writes
    // these archives (the second by propagation: max of 3 known of 5 >= 0.3).
    func testPointsAndBaseAddressingAsWhisperWritesThem() throws {
        var file = WhisperFile(header: try WhisperHeader(Self.createdHeader + [UInt8](repeating: 0, count: 108)))
        for i in (1...4).reversed() { file.store(archive: 0, timestamp: Self.now - 60 * i, value: Double(i)) }
        file.store(archive: 1, timestamp: 1_794_999_600, value: 4)
        let archive0 = Self.hex("6afd85a840100000000000006afd85e440080000000000006afd862040000000000000006afd865c3ff0000000000000000000000000000000000000")
        let archive1 = Self.hex("6afd85304010000000000000" + String(repeating: "0", count: 72))
        XCTAssertEqual(Array(file.bytes[40..<100]), archive0)
        XCTAssertEqual(Array(file.bytes[100..<148]), archive1)
        // whisper.fetch: ((1794999720, 1795000020, 60), [4.0, 3.0, 2.0, 1.0, None])
        let values = file.withArchive(0) { $0.fetch(from: 1_794_999_720, until: 1_795_000_020) }
        XCTAssertEqual(values, [4, 3, 2, 1, nil])
        XCTAssertEqual(file.value(archive: 1, at: 1_794_999_700), 4)
        XCTAssertNil(file.value(archive: 1, at: 1_794_999_900))
        XCTAssertEqual(file.withArchive(0) { $0.newestTimestamp() }, 1_794_999_900)
    }

    func testSlotAddressingUsesFloorDivisionLikePython() {
        let a = ArchiveInfo(offset: 28, secondsPerPoint: 60, points: 5)
        XCTAssertEqual(a.slot(of: 6000, base: 6000), 0)
        XCTAssertEqual(a.slot(of: 6060, base: 6000), 1)
        XCTAssertEqual(a.slot(of: 6300, base: 6000), 0)     // one lap later
        XCTAssertEqual(a.slot(of: 5940, base: 6000), 4)     // before the base: -1 mod 5
        XCTAssertEqual(a.slot(of: 5700, base: 6000), 0)
        XCTAssertEqual(a.slot(of: 6000, base: 5990), 0)     // an unaligned base floors
        XCTAssertEqual(a.slot(of: 6000, base: 6010), 4)     // (-10 // 60) % 5 in Python
        XCTAssertEqual(a.interval(6059), 6000)
        XCTAssertEqual(Whisper.floorDiv(-7, 2), -4)
        XCTAssertEqual(Whisper.mod(-7, 5), 3)
        XCTAssertEqual(a.offset(ofSlot: 2), 52)
    }

    func testOlderLapsAndEmptyArchivesReadAsGaps() throws {
        var file = WhisperFile(header: WhisperHeader(aggregation: .average, xFilesFactor: 0.5, archives: [(60, 5)]))
        XCTAssertTrue(file.withArchive(0) { $0.isEmpty })
        XCTAssertNil(file.value(archive: 0, at: 6000))
        file.store(archive: 0, timestamp: 6000, value: 1)   // base
        file.store(archive: 0, timestamp: 6060, value: 2)
        XCTAssertEqual(file.value(archive: 0, at: 6060), 2)
        // Slot 1 now stands for 6360 too: it holds the older lap, so 6360 is a gap.
        XCTAssertNil(file.value(archive: 0, at: 6360))
        XCTAssertEqual(file.withArchive(0) { $0.newestTimestamp() }, 6060)
    }

    func testPointEncoding() {
        let p = WhisperPoint(timestamp: 0x6AFD_85A8, value: 4)
        XCTAssertEqual(p.encoded, Self.hex("6afd85a84010000000000000"))
        let back = p.encoded.withUnsafeBytes { WhisperPoint($0, at: 0) }
        XCTAssertTrue(back.isIdentical(to: p))
        XCTAssertFalse(WhisperPoint(timestamp: 1, value: 0).isIdentical(to: WhisperPoint(timestamp: 1, value: -0.0)))
    }

    func testValidationRejectsWhatIsNotWhisper() {
        let good = Self.createdHeader + [UInt8](repeating: 0, count: 108)
        XCTAssertNoThrow(try WhisperHeader(good))
        func rejects(_ bytes: [UInt8], _ fragment: String, line: UInt = #line) {
            XCTAssertThrowsError(try WhisperHeader(bytes), line: line) { error in
                XCTAssertTrue("\(error)".contains(fragment), "\(error)", line: line)
            }
        }
        func patched(_ at: Int, _ v: UInt32, _ bytes: [UInt8] = good) -> [UInt8] {
            var b = bytes
            b[at] = UInt8(v >> 24); b[at + 1] = UInt8(v >> 16 & 0xff); b[at + 2] = UInt8(v >> 8 & 0xff); b[at + 3] = UInt8(v & 0xff)
            return b
        }
        rejects([], "empty file")
        rejects(Array(good[0..<10]), "too short")
        rejects(Array(good[0..<30]), "truncated whisper header")
        rejects(Array(good.dropLast()), "header says 148")
        rejects(good + [0], "header says 148")
        rejects(patched(0, 9), "aggregation type 9")
        rejects(patched(0, 0), "aggregation type 0")
        rejects(patched(12, 0), "0 archives")
        rejects(patched(12, 1000), "1000 archives")
        rejects(patched(8, Float(1.5).bitPattern), "xFilesFactor")
        rejects(patched(16, 44), "offset 44, expected 40")
        rejects(patched(20, 0), "zero seconds per point")
        rejects(patched(32, 90), "not a multiple")            // 90 s after 60 s
        rejects(patched(32, 60), "not a multiple")            // same step twice
        rejects(patched(36, 1), "retains less")              // 300 s x 1 < 60 s x 5
        rejects(Array("whisper_compressed".utf8) + [UInt8](repeating: 0, count: 200), "go-carbon compressed")
        rejects(Array("GIF89a, not a whisper file at all".utf8), "not a whisper file")
    }
}
