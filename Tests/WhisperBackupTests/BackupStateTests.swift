import XCTest
@testable import WhisperBackup

final class BackupStateTests: XCTestCase {
    let hash = String(repeating: "ab", count: 32)

    func tempDir() throws -> String {
        let dir = "/tmp/wsp-state-test.\(UInt64.random(in: 0...UInt64.max))"
        try Path.makeDirectories(dir)
        addTeardownBlock { BackupStateTests.remove(dir) }
        return dir
    }

    static func remove(_ path: String) {
        for e in (try? system_readdir(path)) ?? [] {
            let p = Path.join(path, e.name)
            if e.kind == .directory { remove(p) } else { _ = try? system_unlink(p) }
        }
        _ = try? system_rmdir(path)
    }

    func entry(_ i: Int64) -> StateEntry {
        StateEntry(size: 100 + i, inode: 7, device: 8, mtimeNs: i, ctimeNs: i, hash: hash, time: 1_795_000_000 + i, storedSize: 50)
    }

    func lines(_ state: BackupState, _ metric: String) throws -> Int {
        let fd = try FileDescriptor.open(state.shardPath(BackupState.shardName(metric)), O_RDONLY)
        return try fd.closeAfter { try fd.readAll() }.filter { $0 == 10 }.count
    }

    func testADeltaVersionsBaseIsKeptAndCompactedWithItsEntry() throws {
        let dir = try tempDir()
        let a = try BackupState(dir: dir)
        var e = entry(4)
        e.base = "20261203T030000Z." + String(repeating: "cd", count: 32)
        try a.record("x.y.d", e)
        try a.record("x.y.f", entry(5))
        XCTAssertEqual(try BackupState(dir: dir).lookup("x.y.d"), e)
        XCTAssertNil(try BackupState(dir: dir).lookup("x.y.f")?.base)
        for _ in 0..<10 { try a.record("x.y.d", e) }
        _ = try a.compact(BackupState.shardName("x.y.d"), superseded: true) { _, _, _ in nil }
        XCTAssertEqual(try BackupState(dir: dir).lookup("x.y.d"), e)
        XCTAssertEqual(try lines(a, "x.y.d"), 2)
    }

    func testForgetOverridesEarlierEntries() throws {
        let dir = try tempDir()
        let a = try BackupState(dir: dir)
        try a.record("x.y.m1", entry(1))
        try a.record("x.y.m2", entry(2))
        try a.forget("x.y.m1")
        let b = try BackupState(dir: dir)
        XCTAssertNil(b.lookup("x.y.m1"))
        XCTAssertEqual(b.lookup("x.y.m2"), entry(2))
        try a.record("x.y.m1", entry(3))
        XCTAssertEqual(try BackupState(dir: dir).lookup("x.y.m1"), entry(3))
    }

    func testADeltaVersionsEntryKeepsItsBaseThroughCompaction() throws {
        let dir = try tempDir()
        let s = try BackupState(dir: dir)
        var delta = entry(5)
        delta.base = "20261127T035433Z." + hash
        try s.record("d.e.f", delta)
        try s.record("d.e.g", entry(6))
        XCTAssertEqual(try BackupState(dir: dir).lookup("d.e.f"), delta)
        XCTAssertEqual(try BackupState(dir: dir).lookup("d.e.g")?.base, nil)
        try s.compact(BackupState.shardName("d.e.f"), superseded: true) { _, _, _ in nil }
        try s.record("d.e.g", entry(7))   // a superseded line: the journal is rewritten
        try s.compact(BackupState.shardName("d.e.f"), superseded: true) { _, _, _ in nil }
        XCTAssertEqual(try lines(s, "d.e.f"), 2)
        XCTAssertEqual(try BackupState(dir: dir).lookup("d.e.f"), delta)
        // A tenth field that is not TIME.SHA256 makes the line unreadable (a re-read), even
        // with a right checksum.
        let bad = BackupState.sealed(delta.line("d.e.h") + "x")
        XCTAssertNil(bad.withUnsafeBufferPointer { BackupState.parse(UnsafeBufferPointer(rebasing: $0.dropLast())) })
        let good = BackupState.sealed(delta.line("d.e.h"))
        XCTAssertNotNil(good.withUnsafeBufferPointer { BackupState.parse(UnsafeBufferPointer(rebasing: $0.dropLast())) })
    }

    func testAJournalWithLongHistoryIsCompactedWhenRead() throws {
        let dir = try tempDir()
        let s = try BackupState(dir: dir)
        for i in 0..<40 { try s.record("a.b.c", entry(Int64(i))) }
        try s.record("a.b.d", entry(99))
        XCTAssertEqual(try lines(s, "a.b.c"), 41)
        let reader = try BackupState(dir: dir)
        XCTAssertEqual(reader.lookup("a.b.c"), entry(39))
        XCTAssertEqual(try lines(s, "a.b.c"), 2)
        XCTAssertEqual(try BackupState(dir: dir).lookup("a.b.d"), entry(99))
    }

    func testCompactionDropsRejectedEntriesAndSaysWhy() throws {
        let dir = try tempDir()
        let s = try BackupState(dir: dir)
        try s.record("a.b.c", entry(1))
        try s.record("a.b.d", entry(2))
        let dropped = try s.compact(BackupState.shardName("a.b.c")) { m, _, _ in m == "a.b.c" ? "gone" : nil }
        XCTAssertEqual(dropped.map(\.metric), ["a.b.c"])
        XCTAssertEqual(dropped.map(\.reason), ["gone"])
        let r = try BackupState(dir: dir)
        XCTAssertNil(r.lookup("a.b.c"))
        XCTAssertEqual(r.lookup("a.b.d"), entry(2))
        XCTAssertEqual(try lines(s, "a.b.c"), 1)
    }

    func testLinesWrittenAfterTheMarkAreKeptUnasked() throws {
        let dir = try tempDir()
        let s = try BackupState(dir: dir)
        try s.record("a.b.old", entry(1))
        let marks = try s.marks()
        try s.record("a.b.new", entry(2))      // a push while the store is listed
        try s.record("c.d.first", entry(3))    // a journal that did not exist at the mark
        var asked: [String] = []
        let shardAB = BackupState.shardName("a.b.old"), shardCD = BackupState.shardName("c.d.first")
        let dropped = try s.compact(shardAB, mark: .some(marks[shardAB])) { m, _, j in
            asked.append(m)
            XCTAssertEqual(j, .marked)
            return "gone"
        }
        XCTAssertEqual(dropped.map(\.metric), ["a.b.old"])
        XCTAssertEqual(asked, ["a.b.old"])
        XCTAssertEqual(try s.compact(shardCD, mark: .some(marks[shardCD])) { _, _, _ in "gone" }.count, 0)
        let r = try BackupState(dir: dir)
        XCTAssertEqual(r.lookup("a.b.new"), entry(2))
        XCTAssertEqual(r.lookup("c.d.first"), entry(3))
        // a journal rewritten since its mark: every entry is asked, as unsure
        let marks2 = try s.marks()
        try s.record("a.b.new", entry(4))
        try s.compact(shardAB, superseded: true) { _, _, _ in nil }
        var judgements: [BackupState.Judgement] = []
        try s.compact(shardAB, mark: .some(marks2[shardAB])) { _, _, j in judgements.append(j); return nil }
        XCTAssertEqual(judgements, [.unsure])
    }

    func testEveryJournalIsNamedOnceWhileJournalsAreRewritten() throws {
        let dir = try tempDir()
        let s = try BackupState(dir: dir)
        // Names of more than one spill block, each journal with a line to drop.
        let count = 2 * BackupState.spillBlock / 60
        var expected = Set<String>()
        for i in 0..<count {
            let metric = "host\(i).\(String(repeating: "x", count: 50)).m"
            try s.record(metric, entry(Int64(i)))
            expected.insert(BackupState.shardName(metric))
        }
        try AtomicFile.write(Path.join(Path.join(dir, "shards"), ".wsp-tmp.1.2"), bytes: [], placement: .replace)
        var seen: [String] = []
        try s.forEachShard { shard in
            seen.append(shard)
            XCTAssertEqual(try s.compact(shard) { _, _, _ in "gone" }.count, 1)   // rewritten by rename
        }
        XCTAssertEqual(seen.count, count)
        XCTAssertEqual(Set(seen), expected)
        XCTAssertEqual(try system_readdir(dir).map(\.name).sorted(), ["shards"])   // nothing left beside the journals
    }

    func testBadRecordsAreTheirOwnKind() {
        let l = StoreLayout(prefix: "node1")
        let key = l.key(metric: "a.b", time: 1_795_000_000, hash: hash)
        XCTAssertEqual(l.entry(l.badKey(key))?.entry, .bad(versionKey: key))
        XCTAssertEqual(l.entry(l.badKey(key))?.metric, "a.b")
        XCTAssertNil(l.parse(l.badKey(key)))
    }
}
