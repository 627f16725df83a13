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

    /// The lines of the journal `metric`'s directory shares with its siblings (`journal`:
    /// another one).
    func lines(_ state: BackupState, _ metric: String, journal: String? = nil) throws -> Int {
        let fd = try FileDescriptor.open(state.shardPath(journal ?? BackupState.siblingsName(metric)), O_RDONLY)
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
        _ = try a.compact(BackupState.siblingsName("x.y.d"), superseded: true) { _, _, _ in nil }
        XCTAssertEqual(try BackupState(dir: dir).lookup("x.y.d"), e)
        XCTAssertEqual(try lines(a, "x.y.d"), 2)
    }

    /// A batch's lines: those of one directory in one append to the journal a single line
    /// would take, in order (a metric twice: the later entry wins), read back by another
    /// process and by this one's cache; a directory with more lines than a shared journal
    /// should take at once gets them in its own journal.
    func testABatchAppendsEachDirectorysLinesInOneWrite() throws {
        let dir = try tempDir()
        let a = try BackupState(dir: dir)
        XCTAssertNil(a.lookup("x.y.m1"))   // the journal read and cached (empty)
        let few: [(metric: String, entry: StateEntry)] = [("x.y.m1", entry(1)), ("x.z.m2", entry(2)), ("x.y.m3", entry(3)), ("x.y.m1", entry(4))]
        XCTAssertTrue(a.record(few).allSatisfy { $0 == nil })
        XCTAssertEqual(try lines(a, "x.y.m1"), 4, "siblings x.y and x.z share the journal x")
        for state in [a, try BackupState(dir: dir)] {
            XCTAssertEqual(state.lookup("x.y.m1"), entry(4))
            XCTAssertEqual(state.lookup("x.z.m2"), entry(2))
            XCTAssertEqual(state.lookup("x.y.m3"), entry(3))
        }
        let many = (0..<400).map { (metric: "x.w.m\($0)", entry: entry(Int64($0))) }
        XCTAssertTrue(a.record(many).allSatisfy { $0 == nil })
        XCTAssertEqual(try lines(a, "x.y.m1"), 4, "the shared journal took none of them")
        XCTAssertEqual(try lines(a, "x.w.m0", journal: "x.w"), 400)
        XCTAssertEqual(try BackupState(dir: dir).lookup("x.w.m399"), entry(399))
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

    func journalNames(_ dir: String) throws -> [String] {
        try system_readdir(Path.join(dir, "shards")).map(\.name).filter { !$0.hasPrefix(".") }.sorted()
    }

    func testSiblingDirectoriesShareAJournalAndADeeperDirectoryGetsItsParents() throws {
        let dir = try tempDir()
        let s = try BackupState(dir: dir)
        for (i, m) in ["srv.web1.cpu.user", "srv.web1.cpu.system", "srv.web1.mem.free", "srv.web2.cpu.user", "top", "srv.web1.disk.sda.reads"].enumerated() {
            try s.record(m, entry(Int64(i)))
        }
        // web1.cpu and web1.mem share srv.web1; disk.sda's parent is srv.web1.disk; the
        // directory of web2.cpu has a parent of its own; the top level has "@".
        XCTAssertEqual(try journalNames(dir), ["@", "srv.web1", "srv.web1.disk", "srv.web2"])
        let r = try BackupState(dir: dir)
        for (i, m) in ["srv.web1.cpu.user", "srv.web1.cpu.system", "srv.web1.mem.free", "srv.web2.cpu.user", "top", "srv.web1.disk.sda.reads"].enumerated() {
            XCTAssertEqual(r.lookup(m), entry(Int64(i)), m)
        }
        XCTAssertNil(r.lookup("srv.web1.cpu.idle"))
    }

    func testAFullSharedJournalSendsLinesToTheDirectorysJournalWhichThenHoldsTheNewest() throws {
        let dir = try tempDir()
        let s = try BackupState(dir: dir)
        // Directories d0, d1, ... under "wide", a metric each, until the shared journal is full.
        var n = 0
        while (try? system_stat(s.shardPath("wide")))?.st_size ?? 0 < BackupState.sharedCap {
            try s.record("wide.d\(n).m", entry(Int64(n)))
            n += 1
        }
        XCTAssertEqual(try journalNames(dir), ["wide"])
        // A new directory's metric goes to its directory's journal; so does a new line of a
        // metric the shared journal holds, once it is full.
        try s.record("wide.d\(n).m", entry(1000))
        try s.record("wide.d0.m", entry(1001))
        XCTAssertEqual(try journalNames(dir), ["wide", "wide.d0", "wide.d\(n)"])
        let r = try BackupState(dir: dir)
        XCTAssertEqual(r.lookup("wide.d0.m"), entry(1001))
        XCTAssertEqual(r.lookup("wide.d\(n).m"), entry(1000))
        XCTAssertEqual(r.lookup("wide.d1.m"), entry(1))
        // Once a directory has a journal, its metrics' lines go there, even a sibling's whose
        // older line is in the shared journal.
        try s.record("wide.d0.other", entry(1002))
        XCTAssertEqual(try lines(s, "wide.d0.m", journal: "wide.d0"), 2)
        // The check asks about the shared journal's entries but wide.d0.m's older one, which
        // is dropped unasked and unreported.
        var asked = Set<String>()
        let dropped = try s.compact("wide", superseded: true) { m, _, _ in asked.insert(m); return nil }
        XCTAssertTrue(dropped.isEmpty)
        XCTAssertEqual(asked.count, n - 1)
        XCTAssertFalse(asked.contains("wide.d0.m"))
        XCTAssertTrue(asked.contains("wide.d1.m"))
        XCTAssertEqual(try lines(s, "wide.d0.m"), n - 1)
        XCTAssertEqual(try BackupState(dir: dir).lookup("wide.d0.m"), entry(1001))
        // Forgetting a metric writes to every journal that may hold it.
        try s.record("wide.d1.m", entry(1003))   // now in wide.d1 too, the older line in "wide"
        try s.forget("wide.d1.m")
        XCTAssertNil(try BackupState(dir: dir).lookup("wide.d1.m"))
        try s.compact("wide.d1", superseded: true) { _, _, _ in nil }   // drops the forget line
        XCTAssertNil(try BackupState(dir: dir).lookup("wide.d1.m"))
        try s.compact("wide", superseded: true) { _, _, _ in nil }
        XCTAssertNil(try BackupState(dir: dir).lookup("wide.d1.m"))
        XCTAssertEqual(try BackupState(dir: dir).lookup("wide.d2.m"), entry(2))
    }

    func testThePreviousVersionsJournalOfADirectoryKeepsItsMetricsLines() throws {
        let dir = try tempDir()
        let s = try BackupState(dir: dir)
        // As the previous version wrote it: one journal per whisper directory.
        try s.append(BackupState.sealed(entry(1).line("srv.web1.cpu.user")), shard: "srv.web1.cpu")
        XCTAssertEqual(try BackupState(dir: dir).lookup("srv.web1.cpu.user"), entry(1))
        try s.record("srv.web1.cpu.user", entry(2))
        try s.record("srv.web1.cpu.system", entry(3))
        try s.record("srv.web1.mem.free", entry(4))
        XCTAssertEqual(try journalNames(dir), ["srv.web1", "srv.web1.cpu"])
        XCTAssertEqual(try lines(s, "", journal: "srv.web1.cpu"), 3)
        let r = try BackupState(dir: dir)
        XCTAssertEqual(r.lookup("srv.web1.cpu.user"), entry(2))
        XCTAssertEqual(r.lookup("srv.web1.cpu.system"), entry(3))
        XCTAssertEqual(r.lookup("srv.web1.mem.free"), entry(4))
        try s.forget("srv.web1.cpu.user")
        XCTAssertNil(try BackupState(dir: dir).lookup("srv.web1.cpu.user"))
        XCTAssertEqual(try journalNames(dir), ["srv.web1", "srv.web1.cpu"])
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
        try s.compact(BackupState.siblingsName("d.e.f"), superseded: true) { _, _, _ in nil }
        try s.record("d.e.g", entry(7))   // a superseded line: the journal is rewritten
        try s.compact(BackupState.siblingsName("d.e.f"), superseded: true) { _, _, _ in nil }
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
        let dropped = try s.compact(BackupState.siblingsName("a.b.c")) { m, _, _ in m == "a.b.c" ? "gone" : nil }
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
        let shardAB = BackupState.siblingsName("a.b.old"), shardCD = BackupState.siblingsName("c.d.first")
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
            let metric = "host\(i).\(String(repeating: "x", count: 50)).d.m"
            try s.record(metric, entry(Int64(i)))
            expected.insert(BackupState.siblingsName(metric))
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
