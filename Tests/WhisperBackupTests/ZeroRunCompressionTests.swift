import CDeflate
import CDeflateBlocks
import XCTest
@testable import WhisperBackup

/// The compressor's zero-run path: its output must be one standard gzip member that zlib and
/// libdeflate both read back to the input, for any mix of zeros and data and every level.
final class ZeroRunCompressionTests: XCTestCase {
    struct Generator {
        var state: UInt64
        mutating func next() -> UInt64 {
            state = state &* 6364136223846793005 &+ 1442695040888963407
            return state >> 33
        }
        mutating func below(_ n: Int) -> Int { Int(next() % UInt64(n)) }
    }

    /// Zeros of random lengths (many past the 64 KiB threshold) between random bytes (stored
    /// blocks), repetitive text (short matches) and whisper-like points.
    func sample(_ g: inout Generator) -> [UInt8] {
        var out: [UInt8] = []
        for _ in 0..<(1 + g.below(6)) {
            switch g.below(4) {
            case 0:
                out += [UInt8](repeating: 0, count: [0, 1, 257, 65_535, 65_536, 65_600, 66_049, 200_000, 1 << 20][g.below(9)] + g.below(300))
            case 1:
                out += (0..<g.below(150_000)).map { _ in UInt8(truncatingIfNeeded: g.next()) }
            case 2:
                let words = ["carbon", "whisper", ".", "servers", "cpu", "\n", "0"]
                while out.count % 100_000 != 99_999 && g.below(20_000) != 0 { out += Array(words[g.below(words.count)].utf8) }
            default:
                var t = UInt32(1_795_000_000)
                for _ in 0..<g.below(40_000) {
                    t += 60
                    withUnsafeBytes(of: t.bigEndian) { out += $0 }
                    withUnsafeBytes(of: Double(g.below(1000)).bitPattern.bigEndian) { out += $0 }
                }
            }
        }
        return out
    }

    func inflateWithZlib(_ gz: [UInt8]) throws -> [UInt8] {
        var out: [UInt8] = []
        var at = 0
        try gz.withUnsafeBytes { input in
            try Gzip.decompress(read: { buf in
                let n = min(buf.count, input.count - at)
                buf.copyMemory(from: UnsafeRawBufferPointer(rebasing: input[at..<at + n]))
                at += n
                return n
            }, write: { out += $0 })
        }
        return out
    }

    func testEveryLevelRoundTripsThroughZlibAndLibdeflateAsOneMember() throws {
        var g = Generator(state: 42)
        var spliced = 0
        for round in 0..<70 {
            let input = sample(&g)
            let level = Int32([0, 1, 2, 5, 6, 9, 12][round % 7])
            let c = Gzip.Compressor(level: level)
            let out = ByteBuffer(capacity: 0)
            let runs = input.withUnsafeBytes { ZeroRuns.find(in: $0, minimum: Gzip.Compressor.zeroRunMinimum) }
            if !runs.isEmpty {
                XCTAssertTrue(input.withUnsafeBytes { c.compressSpliced($0, runs: runs, into: out) }, "round \(round)")
                spliced += 1
                // As small as libdeflate on the whole buffer, give or take the realignments.
                let whole = ByteBuffer(capacity: 0)
                input.withUnsafeBytes { c.compressWhole($0, into: whole) }
                XCTAssertLessThanOrEqual(out.count, whole.count + whole.count / 50 + 16 * runs.count + 64, "round \(round)")
            } else {
                input.withUnsafeBytes { c.compress($0, into: out) }
            }
            let gz = Array(out.bytes)
            XCTAssertEqual(try inflateWithZlib(gz), input, "round \(round), level \(level)")
            XCTAssertEqual(try Gzip.decompressSingleMember(gz), input, "round \(round), level \(level)")
        }
        XCTAssertGreaterThanOrEqual(spliced, 15)
    }

    /// Zero runs at the very start, at the very end, alone, of exactly the threshold, and
    /// the empty input.
    func testEdgesRoundTrip() throws {
        let data = (0..<5_000).map { UInt8(truncatingIfNeeded: $0 * 31 + 7) }
        let z = { (n: Int) in [UInt8](repeating: 0, count: n) }
        let cases: [[UInt8]] = [[], z(1 << 20), z(65_536), z(65_536 + 258), z(70_000) + data, data + z(70_000),
                                data + z(65_600) + data + z(1 << 20), [1] + z(65_599) + [1]]
        for (i, input) in cases.enumerated() {
            let gz = Gzip.compress(input)
            XCTAssertEqual(try inflateWithZlib(gz), input, "case \(i)")
            XCTAssertEqual(try Gzip.decompressSingleMember(gz), input, "case \(i)")
        }
        // A megabyte of zeros costs about as much as libdeflate would make of it.
        XCTAssertLessThan(Gzip.compress(z(1 << 20)).count, 1_200)
    }

    func testZeroRunsAreFoundOnChunkBoundariesAndOnlyWhenLongEnough() {
        var buf = [UInt8](repeating: 1, count: 400_000)
        for i in 1000..<199_990 { buf[i] = 0 }              // long: trimmed to 64-byte chunks
        for i in 250_000..<260_000 { buf[i] = 0 }           // too short
        for i in 330_000..<400_000 { buf[i] = 0 }           // runs to the end
        let runs = buf.withUnsafeBytes { ZeroRuns.find(in: $0, minimum: 65_536) }
        XCTAssertEqual(runs, [1024..<199_936, 330_048..<400_000])
        XCTAssertEqual([UInt8](repeating: 0, count: 1000).withUnsafeBytes { ZeroRuns.find(in: $0, minimum: 65_536) }, [])
    }

    func testTheBlockWalkerRejectsTruncatedAndTrailingData() {
        let input = (0..<300_000).map { UInt8(truncatingIfNeeded: $0 % 251 == 0 ? $0 / 7 : $0 % 13) }
        let c = libdeflate_alloc_compressor(6)!
        defer { libdeflate_free_compressor(c) }
        var raw = [UInt8](repeating: 0, count: libdeflate_deflate_compress_bound(c, input.count))
        raw.removeSubrange(libdeflate_deflate_compress(c, input, input.count, &raw, raw.count)...)
        let workspace = UnsafeMutableRawPointer.allocate(byteCount: deflate_blocks_workspace_size(), alignment: 16)
        defer { workspace.deallocate() }
        var header = 0, end = 0
        XCTAssertEqual(deflate_find_final_block(workspace, raw, raw.count, &header, &end), 0)
        XCTAssertEqual((end + 7) / 8, raw.count)
        XCTAssertEqual(raw[header / 8] >> UInt8(header % 8) & 1, 1, "BFINAL set where the walker says")
        XCTAssertEqual(deflate_find_final_block(workspace, raw, raw.count - 1, &header, &end), -1)
        XCTAssertEqual(deflate_find_final_block(workspace, raw + [0, 0], raw.count + 2, &header, &end), -1)
    }
}
