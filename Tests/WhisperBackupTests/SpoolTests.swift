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
}
