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

    func packPath(_ dir: String, _ metric: String) -> String { "\(dir)/pageindex/\(PageIndexes.fileName(metric))" }

    func testRoundTripThroughTheStateDirectory() throws {
        let dir = try tempDir()
        let index = sample()
        XCTAssertEqual(index.pages.count, 4)
        XCTAssertEqual(index.encoded.count, 8 + 4 + 4 + 8 + 32 + 8 * 4 + 8)
        let indexes = PageIndexes(stateDir: dir)
        XCTAssertNil(indexes.read(metric: "a.b"))
        try indexes.write(index, metric: "a.b")
        XCTAssertEqual(indexes.read(metric: "a.b"), index)
        XCTAssertNil(indexes.read(metric: "a.c"))
        // Another process (a new reader) finds it too.
        XCTAssertEqual(PageIndexes(stateDir: dir).read(metric: "a.b"), index)
        // A later record overrides; an empty file has no page.
        let empty = sample(size: 0, depth: 0)
        try indexes.write(empty, metric: "a.b")
        XCTAssertEqual(indexes.read(metric: "a.b"), empty)
        XCTAssertEqual(PageIndexes(stateDir: dir).read(metric: "a.b"), empty)
        XCTAssertEqual(empty.pages, [])
    }

    func testOneFileForTheMetricsOfADirectory() throws {
        let dir = try tempDir()
        let indexes = PageIndexes(stateDir: dir)
        for i in 0..<50 { try indexes.write(sample(depth: i % 3), metric: "servers.h1.cpu\(i)") }
        try indexes.write(sample(), metric: "servers.h2.cpu0")
        try indexes.write(sample(), metric: "top")
        // One file for a whisper directory and its siblings (named by their parent, as the
        // state's journals are named by theirs): no inode per metric or per directory.
        XCTAssertEqual(try system_readdir("\(dir)/pageindex").map(\.name).sorted(), ["@", "servers"])
        XCTAssertFalse(Path.exists("\(dir)/pages"))
        let reader = PageIndexes(stateDir: dir)
        for i in [0, 17, 49] { XCTAssertEqual(reader.read(metric: "servers.h1.cpu\(i)"), sample(depth: i % 3)) }
        XCTAssertEqual(reader.read(metric: "top"), sample())
        // Names are told apart by bytes: caf\u{e9} (NFC) is not cafe\u{301} (NFD).
        try indexes.write(sample(depth: 7), metric: "servers.h1.caf\u{e9}")
        XCTAssertNil(PageIndexes(stateDir: dir).read(metric: "servers.h1.cafe\u{301}"))
        XCTAssertEqual(PageIndexes(stateDir: dir).read(metric: "servers.h1.caf\u{e9}"), sample(depth: 7))
    }

    func testSiblingDirectoriesShareAFileAndAFullFileSendsRecordsToTheDirectorys() throws {
        let dir = try tempDir()
        let indexes = PageIndexes(stateDir: dir)
        for m in ["servers.h1.cpu.user", "servers.h1.cpu.system", "servers.h1.mem.free", "servers.h1.disk.sda.reads"] {
            try indexes.write(sample(), metric: m)
        }
        XCTAssertEqual(try system_readdir("\(dir)/pageindex").map(\.name).sorted(), ["servers.h1", "servers.h1.disk"])
        // A wide tree: once the shared file is past its cap, records go to the metric's
        // directory's file, and both are read.
        let record = Int64(PageIndexes.record(name: Array("wide.d0000.m".utf8), index: sample().encoded).count)
        let fill = Int((PageIndexes.fileCap + record - 1) / record)
        for i in 0..<fill { try indexes.write(sample(), metric: "wide.d\(String(format: "%04d", i)).m") }
        XCTAssertEqual(try system_readdir("\(dir)/pageindex").map(\.name).sorted(), ["servers.h1", "servers.h1.disk", "wide"])
        try indexes.write(sample(depth: 3), metric: "wide.late.m")
        XCTAssertLessThan(Int64(try system_stat("\(dir)/pageindex/wide").st_size), PageIndexes.fileCap + record)
        XCTAssertTrue(Path.exists("\(dir)/pageindex/wide.late"))
        let reader = PageIndexes(stateDir: dir)
        XCTAssertEqual(reader.read(metric: "wide.late.m"), sample(depth: 3))
        XCTAssertEqual(reader.read(metric: "wide.d0007.m"), sample())
        // A metric with a record in each file: the reader takes the one of the content asked for.
        try indexes.write(sample(size: 5000, depth: 4), metric: "wide.d0007.m")
        XCTAssertTrue(Path.exists("\(dir)/pageindex/wide.d0007"))
        let other = PageIndexes(stateDir: dir)
        XCTAssertEqual(other.read(metric: "wide.d0007.m", hash: Hex.encode(sample(size: 5000, depth: 4).hash)), sample(size: 5000, depth: 4))
        XCTAssertEqual(other.read(metric: "wide.d0007.m", hash: Hex.encode(sample().hash)), sample())
        XCTAssertNil(other.read(metric: "wide.d0007.m", hash: String(repeating: "0", count: 64)))
    }

    /// Names past what a file name may hold (255 bytes): the shared file and the directory's
    /// are named by a SHA-256 of the path, as the journals are, and hold the metric whole.
    func testLongPathsGetHashedFileNames() throws {
        let dir = try tempDir()
        let deep = (0..<30).map { "component\($0)" }.joined(separator: ".")   // 329 bytes
        let metrics = ["\(deep).d1.m", "\(deep).d2.m", "\(deep).d1.sub.m"]
        let indexes = PageIndexes(stateDir: dir)
        for (i, m) in metrics.enumerated() { try indexes.write(sample(depth: i), metric: m) }
        let names = try system_readdir("\(dir)/pageindex").map(\.name).sorted()
        XCTAssertEqual(names.count, 2, "\(names)")   // deep's (d1 and d2 share it) and deep.d1's
        XCTAssertTrue(names.allSatisfy { $0.utf8.count == 64 && Hex.isHex($0.utf8, length: 64) }, "\(names)")
        for (i, m) in metrics.enumerated() { XCTAssertEqual(PageIndexes(stateDir: dir).read(metric: m), sample(depth: i), m) }
    }

    func testThePreviousVersionsFileOfADirectoryIsRead() throws {
        let dir = try tempDir()
        // As the previous version kept them: one file per whisper directory, named by it.
        try Path.makeDirectories("\(dir)/pageindex")
        let old = PageIndexes.record(name: Array("servers.h1.cpu.user".utf8), index: sample(depth: 6).encoded)
            + PageIndexes.record(name: Array("servers.h1.cpu.system".utf8), index: sample(size: 9000).encoded)
        try AtomicFile.write("\(dir)/pageindex/servers.h1.cpu", bytes: old, placement: .replace, durable: false)
        let indexes = PageIndexes(stateDir: dir)
        XCTAssertEqual(indexes.read(metric: "servers.h1.cpu.user", hash: Hex.encode(sample().hash)), sample(depth: 6))
        XCTAssertEqual(indexes.read(metric: "servers.h1.cpu.system"), sample(size: 9000))
        // A newer record goes to the shared file and is the one read for the new content.
        try indexes.write(sample(size: 7000, depth: 0), metric: "servers.h1.cpu.user")
        XCTAssertTrue(Path.exists("\(dir)/pageindex/servers.h1"))
        XCTAssertEqual(PageIndexes(stateDir: dir).read(metric: "servers.h1.cpu.user", hash: Hex.encode(sample(size: 7000).hash)),
                       sample(size: 7000, depth: 0))
    }

    func testEarlierVersionsFilesAreReadThenRemovedOnceReplaced() throws {
        let dir = try tempDir()
        // STATE/pages/XX/HASH32, named by the SHA-256 of the metric's name, as earlier versions wrote it.
        let h = Digest.sha256Hex(Array("a.b".utf8))
        let legacy = PageIndex.legacyPath(stateDir: dir, metric: "a.b")
        XCTAssertEqual(legacy, "\(dir)/pages/\(h.prefix(2))/\(h.prefix(32))")
        try Path.makeDirectories(Path.directory(of: legacy))
        try AtomicFile.write(legacy, bytes: sample(depth: 4).encoded, placement: .replace, durable: false)
        let indexes = PageIndexes(stateDir: dir)
        XCTAssertEqual(indexes.read(metric: "a.b"), sample(depth: 4))
        try indexes.write(sample(depth: 5), metric: "a.b")
        XCTAssertFalse(Path.exists(legacy))
        XCTAssertEqual(PageIndexes(stateDir: dir).read(metric: "a.b"), sample(depth: 5))
    }

    func testTornAndDamagedRecordsReadAsNoneAndTheRestSurvives() throws {
        let dir = try tempDir()
        let indexes = PageIndexes(stateDir: dir)
        for m in ["d.a", "d.b", "d.c"] { try indexes.write(sample(), metric: m) }
        let path = packPath(dir, "d.a")
        let file = try FileDescriptor.open(path, O_RDONLY)
        var bytes = try file.closeAfter { try file.readAll() }
        let one = bytes.count / 3
        // A flipped bit inside d.b's index: d.b reads as none, d.a and d.c as written.
        bytes[one + 40] ^= 0x01
        try AtomicFile.write(path, bytes: bytes, placement: .replace, durable: false)
        var reader = PageIndexes(stateDir: dir)
        XCTAssertEqual(reader.read(metric: "d.a"), sample())
        XCTAssertNil(reader.read(metric: "d.b"))
        XCTAssertEqual(reader.read(metric: "d.c"), sample())
        // A torn append (a crash inside the write): the records before it stand, and the next
        // process to open the file compacts the damage away before it appends.
        bytes[one + 40] ^= 0x01
        try AtomicFile.write(path, bytes: bytes + Array(PageIndexes.record(name: Array("d.e".utf8), index: sample().encoded).prefix(30)),
                             placement: .replace, durable: false)
        try PageIndexes(stateDir: dir).write(sample(depth: 9), metric: "d.f")
        reader = PageIndexes(stateDir: dir)
        for m in ["d.a", "d.b", "d.c"] { XCTAssertEqual(reader.read(metric: m), sample(), m) }
        XCTAssertNil(reader.read(metric: "d.e"))
        XCTAssertEqual(reader.read(metric: "d.f"), sample(depth: 9))
        let size = try system_stat(path).st_size
        XCTAssertEqual(Int(size), 4 * (bytes.count / 3), "compacted: the torn record is gone")
        // Garbage in place of the file: nothing read, and the next write starts it again.
        try AtomicFile.write(path, bytes: [UInt8](repeating: 0x41, count: 100), placement: .replace, durable: false)
        XCTAssertNil(PageIndexes(stateDir: dir).read(metric: "d.a"))
        try PageIndexes(stateDir: dir).write(sample(depth: 1), metric: "d.a")
        XCTAssertEqual(PageIndexes(stateDir: dir).read(metric: "d.a"), sample(depth: 1))
    }

    func testOverriddenRecordsAreCompactedAndAWriterFollowsTheNewFile() throws {
        let dir = try tempDir()
        let writer = PageIndexes(stateDir: dir)
        for day in 0..<30 {
            for m in ["d.a", "d.b"] { try writer.write(sample(depth: day), metric: m) }
        }
        let path = packPath(dir, "d.a")
        let record = PageIndexes.record(name: Array("d.a".utf8), index: sample().encoded).count
        XCTAssertEqual(Int(try system_stat(path).st_size), 60 * record, "the writer appends, it never rewrites")
        // A reader finds 60 records for 2 metrics: it rewrites the file with the last two.
        let reader = PageIndexes(stateDir: dir)
        XCTAssertEqual(reader.read(metric: "d.a"), sample(depth: 29))
        XCTAssertEqual(Int(try system_stat(path).st_size), 2 * record)
        // The writer still holds the old file open: its next record goes to the new one.
        try writer.write(sample(depth: 30), metric: "d.b")
        XCTAssertEqual(PageIndexes(stateDir: dir).read(metric: "d.b"), sample(depth: 30))
        XCTAssertEqual(PageIndexes(stateDir: dir).read(metric: "d.a"), sample(depth: 29))
        XCTAssertEqual(Int(try system_stat(path).st_size), 3 * record)
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
        // A torn file of an earlier version: it reads as none.
        let dir = try tempDir()
        let legacy = PageIndex.legacyPath(stateDir: dir, metric: "m")
        try Path.makeDirectories(Path.directory(of: legacy))
        try AtomicFile.write(legacy, bytes: Array(bytes.prefix(60)), placement: .replace, durable: false)
        XCTAssertNil(PageIndexes(stateDir: dir).read(metric: "m"))
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
