import XCTest
@testable import WhisperBackup

final class SpoolTests: XCTestCase {
    func makeSpool(max: Int64) throws -> Spool {
        let dir = NSTemporaryDirectory() + "spool-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        return try Spool(dir: dir, maxBytes: max, waitSeconds: 0.05)
    }

    /// Written files count against the bound until a consumer discards them; a discarded
    /// file's inode is reused by the next write (no create/unlink churn).
    func testTheBoundHoldsAndDiscardedFilesAreReused() throws {
        let spool = try makeSpool(max: 1000)
        let a = try [UInt8](repeating: 1, count: 600).withUnsafeBytes { try spool.write($0) }
        XCTAssertThrowsError(try [UInt8](repeating: 2, count: 600).withUnsafeBytes { try spool.write($0) }) { error in
            XCTAssertTrue(error is SpoolFull, "\(error)")
        }
        let b = try [UInt8](repeating: 3, count: 400).withUnsafeBytes { try spool.write($0) }
        XCTAssertEqual(try spool.withLedger { $0.used }, 1000)
        let inode = try system_stat(a).st_ino
        Spool.discard(a)
        XCTAssertFalse(Path.exists(a))
        XCTAssertEqual(try spool.withLedger { $0.used }, 400)
        let c = try [UInt8](repeating: 4, count: 500).withUnsafeBytes { try spool.write($0) }
        XCTAssertEqual(try system_stat(c).st_ino, inode, "the emptied file was written again")
        XCTAssertEqual(FileManager.default.contents(atPath: c).map { [UInt8]($0) }, [UInt8](repeating: 4, count: 500))
        XCTAssertEqual(FileManager.default.contents(atPath: b).map { [UInt8]($0) }, [UInt8](repeating: 3, count: 400))
        XCTAssertEqual(spool.usage(), 900)
    }

    /// Files given back through `SpoolReturns` count until their group goes back: at `files`
    /// files, at `bytes`, before a wait (`Waiting.willWait`) and at `flush`.
    func testReturnsGoBackInGroupsAndBeforeAWait() throws {
        let spool = try makeSpool(max: 1 << 30)
        func write(_ n: Int) throws -> String { try [UInt8](repeating: 5, count: n).withUnsafeBytes { try spool.write($0) } }
        let returns = SpoolReturns(files: 3, bytes: 10_000)
        let a = try write(100), b = try write(100), c = try write(100)
        returns.add(a, size: 100)
        returns.add(b, size: 100)
        XCTAssertEqual(try spool.withLedger { $0.used }, 300, "two of three: still spooled")
        XCTAssertTrue(Path.exists(a) && Path.exists(b))
        returns.add(c, size: 100)
        XCTAssertEqual(try spool.withLedger { $0.used }, 0, "the third sends the group back")
        XCTAssertFalse(Path.exists(a) || Path.exists(b) || Path.exists(c))
        let big = try write(20_000)
        returns.add(big, size: 20_000)
        XCTAssertFalse(Path.exists(big), "past the bytes: back at once")
        let d = try write(100)
        returns.add(d, size: 100)
        Waiting.willWait()
        XCTAssertFalse(Path.exists(d), "a wait sends back what is pending")
        let e = try write(100)
        returns.add(e, size: 100)
        returns.flush()
        XCTAssertFalse(Path.exists(e))
        XCTAssertEqual(try spool.withLedger { $0.used }, 0)
        let one = SpoolReturns(files: 1, bytes: 10_000)
        let f = try write(100)
        one.add(f, size: 100)
        XCTAssertFalse(Path.exists(f), "one at a time: back at once")
    }

    /// A small discarded file keeps its blocks, and the next file written into it holds its own
    /// bytes only (no tail of the old one); a large one is emptied before it waits for reuse.
    /// Every producer replaces the whole content: `write`, and a store's `get` into the path.
    func testReusedFilesHoldOnlyTheNewContent() throws {
        let spool = try makeSpool(max: 1 << 30)
        let small = try [UInt8](repeating: 7, count: 40_000).withUnsafeBytes { try spool.write($0) }
        Spool.discard(small)
        let free = spool.dir + "/.wsp-free.0"
        XCTAssertEqual(try system_stat(free).st_size, 40_000, "a small file keeps its blocks")
        let shorter = try [UInt8](repeating: 8, count: 10).withUnsafeBytes { try spool.write($0) }
        XCTAssertEqual(FileManager.default.contents(atPath: shorter).map { [UInt8]($0) }, [UInt8](repeating: 8, count: 10))
        Spool.discard(shorter)
        // A store's get into a reused file: the object's bytes, nothing after them.
        let storeDir = spool.dir + "-store"
        try Path.makeDirectories(storeDir)
        let store = FileStore(root: storeDir, location: "file://" + storeDir)
        _ = try [UInt8](repeating: 9, count: 30_000).withUnsafeBytes { try spool.write($0) }
        Spool.discard(try [UInt8](repeating: 1, count: 30_000).withUnsafeBytes { try spool.write($0) })
        try store.put("m/obj", body: .bytes(Array("object".utf8)))
        let got = try spool.add(reserving: 6) { try store.get("m/obj", to: $0) }
        XCTAssertEqual(FileManager.default.contents(atPath: got).map { [UInt8]($0) }, Array("object".utf8))
        let large = try [UInt8](repeating: 3, count: 100_000).withUnsafeBytes { try spool.write($0) }
        let inode = try system_stat(large).st_ino
        Spool.discard(large)
        let emptied = try system_readdir(spool.dir).map(\.name).filter { $0.hasPrefix(".wsp-free.") }
            .map { spool.dir + "/" + $0 }.first { (try? system_stat($0).st_ino) == inode }
        XCTAssertEqual(try system_stat(try XCTUnwrap(emptied)).st_size, 0, "a large file is emptied")
    }

    /// Files the ledger does not know of still count (found by the scan at a process's first
    /// reservation), and a damaged ledger is rebuilt from the directory.
    func testForeignFilesAndADamagedLedgerAreMeasured() throws {
        let spool = try makeSpool(max: 1000)
        _ = try [UInt8](repeating: 1, count: 100).withUnsafeBytes { try spool.write($0) }
        FileManager.default.createFile(atPath: spool.dir + "/foreign", contents: Data(count: 800))
        try "garbage".write(toFile: spool.dir + "/.wsp-spool.lock", atomically: false, encoding: .utf8)
        XCTAssertThrowsError(try [UInt8](repeating: 2, count: 200).withUnsafeBytes { try spool.write($0) })
        XCTAssertEqual(try spool.withLedger { $0.spooled }, 900)
        let r = try spool.reserve(100)
        spool.cancel(r)
        XCTAssertEqual(try spool.withLedger { $0.used }, 900)
    }

    /// The ledger is read in one go; a damaged file (longer than a read too) is cut to the
    /// ledger's text, and a text that got shorter (a reservation line gone) is padded with
    /// empty lines to the file's length: the file is the ledger's text, then only newlines.
    func testTheLedgerFileHoldsItsText() throws {
        let spool = try makeSpool(max: 1 << 20)
        let path = spool.dir + "/.wsp-spool.lock"
        func file() throws -> [UInt8] { Array(try Data(contentsOf: URL(fileURLWithPath: path))) }
        func ledgerText() throws -> [UInt8] { Array(try spool.withLedger { $0.text }.utf8) }
        try String(repeating: "garbage\n", count: 1000).write(toFile: path, atomically: false, encoding: .utf8)
        _ = try [UInt8](repeating: 1, count: 100).withUnsafeBytes { try spool.write($0) }
        func assertTextThenNewlines(_ f: [UInt8], _ text: [UInt8], line: UInt = #line) {
            XCTAssertEqual(Array(f.prefix(text.count)), text, line: line)
            XCTAssertTrue(f.dropFirst(text.count).allSatisfy { $0 == UInt8(ascii: "\n") }, line: line)
            XCTAssertEqual(SpoolLedger(parsing: f)?.text, String(decoding: text, as: UTF8.self), line: line)
        }
        XCTAssertLessThan(try file().count, 200, "the damaged file was cut")
        assertTextThenNewlines(try file(), try ledgerText())
        let r = try spool.reserve(100)
        let withReservation = try file()
        XCTAssertEqual(try spool.withLedger { $0.reservations.count }, 1)
        assertTextThenNewlines(withReservation, try ledgerText())
        spool.cancel(r)
        XCTAssertEqual(try spool.withLedger { $0.reservations.count }, 0)
        XCTAssertEqual(try file().count, withReservation.count, "padded to the length it had, not cut")
        assertTextThenNewlines(try file(), try ledgerText())
    }

    /// A producer that waited in vain marks the spool stalled: the next reservation that does
    /// not fit fails without waiting, until something is discarded.
    func testAStalledSpoolFailsAtOnceUntilItDrains() throws {
        let spool = try makeSpool(max: 1000)
        let a = try [UInt8](repeating: 1, count: 800).withUnsafeBytes { try spool.write($0) }
        XCTAssertThrowsError(try spool.reserve(300)) { XCTAssertTrue(($0 as? SpoolFull)?.stopsTheStage == true, "\($0)") }
        XCTAssertTrue(try spool.withLedger { $0.stalled })
        XCTAssertEqual(SpoolLedger(parsing: Array(try spool.withLedger { $0.text }.utf8))?.stalled, true)
        let patient = try Spool(dir: spool.dir, maxBytes: 1000, waitSeconds: 60)
        let t0 = system_monotonic()
        XCTAssertThrowsError(try patient.reserve(300)) { XCTAssertTrue(($0 as? SpoolFull)?.stalled == true, "\($0)") }
        XCTAssertLessThan(system_monotonic() - t0, 5)
        _ = try patient.reserve(100)   // what fits is still granted
        Spool.discard(a)
        XCTAssertFalse(try spool.withLedger { $0.stalled })
        XCTAssertFalse((SpoolFull(dir: "d", needed: 2000, limit: 1000, waited: 0)).stopsTheStage, "too large: only that record fails")
    }
    /// A file is written under the name the record will carry, not renamed into it: the path
    /// `fill` is given is the one returned, named as a spool file, and nothing else is left.
    func testAFileIsWrittenUnderItsFinalName() throws {
        let spool = try makeSpool(max: 1 << 20)
        var written = ""
        let path = try spool.add(reserving: 5) { p in
            written = p
            XCTAssertTrue(Spool.isSpoolFile(p), p)
            try Array("hello".utf8).withUnsafeBytes { b in
                let fd = try FileDescriptor.open(p, O_WRONLY | O_CREAT, mode: 0o600)
                try fd.closeAfter { try fd.overwrite(with: b) }
            }
        }
        XCTAssertEqual(path, written)
        XCTAssertEqual(try system_readdir(spool.dir).map(\.name).filter { $0 != ".wsp-spool.lock" }, [Path.lastComponent(path)])
        XCTAssertEqual(try spool.withLedger { $0.spooled }, 5)
    }

    /// A file being written is counted by its reservation, not a second time by a scan of
    /// the directory (it has its final name from the start).
    func testAFileBeingWrittenCountsOnce() throws {
        let spool = try makeSpool(max: 1000)
        let r = try spool.reserve(300)
        FileManager.default.createFile(atPath: r.path, contents: Data(count: 300))
        try spool.withLedger { $0.scanned = 0 }   // the next reservation scans
        let r2 = try spool.reserve(100)
        XCTAssertEqual(try spool.withLedger { $0.used }, 400)
        XCTAssertEqual(try spool.withLedger { $0.spooled }, 0)
        spool.cancel(r2)
        spool.cancel(r)
    }

    /// A producer killed while it wrote leaves a file no record names: it goes with its
    /// reservation, at the next update of the ledger. A finished file of a dead process stays
    /// (a record may name it), and so does the file of a live process's reservation.
    func testTheFileOfAKilledProducersReservationIsRemoved() throws {
        let spool = try makeSpool(max: 1 << 20)
        let child = Process()
        child.executableURL = URL(fileURLWithPath: "/bin/true")
        try child.run()
        child.waitUntilExit()
        let dead = child.processIdentifier
        let unfinished = spool.filePath(pid: dead, token: 42)
        let finished = spool.filePath(pid: dead, token: 43)
        FileManager.default.createFile(atPath: unfinished, contents: Data(count: 100))
        FileManager.default.createFile(atPath: finished, contents: Data(count: 100))
        let live = try spool.reserve(100)
        FileManager.default.createFile(atPath: live.path, contents: Data(count: 10))
        try spool.withLedger { $0.reservations.append(.init(pid: dead, token: 42, bytes: 100)) }
        XCTAssertEqual(try spool.withLedger { $0.reservations.map(\.token) }, [live.token], "the dead process's reservation lapsed")
        XCTAssertFalse(Path.exists(unfinished), "its unfinished file went with it")
        XCTAssertTrue(Path.exists(finished))
        XCTAssertTrue(Path.exists(live.path))
        spool.cancel(live)
    }

    /// A spool file removed behind the producer's back before it is booked fails its record
    /// (no record names a file that is not there) and gives its room back.
    func testAFileGoneBeforeItIsBookedFailsTheRecord() throws {
        let spool = try makeSpool(max: 1 << 20)
        XCTAssertThrowsError(try spool.add(reserving: 10) { p in
            FileManager.default.createFile(atPath: p, contents: Data(count: 10))
            _ = try system_unlink(p)
        })
        XCTAssertEqual(try spool.withLedger { $0.used }, 0)
    }

    /// The ledger's numbers as bytes: a negative, a 20-digit token, garbage refused.
    func testTheLedgerParsesItsOwnText() throws {
        var l = SpoolLedger(spooled: 123)
        l.scanned = 1_700_000_000
        l.free = 7
        l.stalled = true
        l.reservations = [.init(pid: 99, token: .max, bytes: 4096)]
        let back = try XCTUnwrap(SpoolLedger(parsing: Array(l.text.utf8)))
        XCTAssertEqual(back.text, l.text)
        XCTAssertEqual(back.reservations.first?.token, .max)
        XCTAssertNil(SpoolLedger(parsing: Array("wsp-spool 1\nspooled 1x\n".utf8)))
        XCTAssertNil(SpoolLedger(parsing: Array("wsp-spool 1\nspooled 1\nfree -1\n".utf8)))
        XCTAssertNil(SpoolLedger(parsing: Array("wsp-spool 2\nspooled 1\n".utf8)))
        XCTAssertNil(SpoolLedger(parsing: Array("wsp-spool 1\nspooled 1\nresv 1 2\n".utf8)))
        XCTAssertEqual(SpoolLedger.number(ArraySlice("-12".utf8)), -12)
        XCTAssertNil(SpoolLedger.number(ArraySlice("".utf8)))
        XCTAssertNil(SpoolLedger.number(ArraySlice("-".utf8)))
    }
}
