import XCTest
@testable import WhisperBackup

/// A restored file is put in place without ever replacing one that appeared meanwhile: in one
/// rename where the filesystem can (RENAME_NOREPLACE), else by a link (NFS).
final class MergeBatchTests: XCTestCase {
    func testANewFileIsPlacedWithoutReplacingAnExistingOne() throws {
        let dir = NSTemporaryDirectory() + "place-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        try Path.makeDirectories(dir)
        func write(_ name: String, _ text: String) throws { try AtomicFile.write(dir + "/" + name, bytes: Array(text.utf8), placement: .replace) }
        func read(_ name: String) -> String? {
            (try? FileDescriptor.open(dir + "/" + name, O_RDONLY).closeAfterRead()).map { String(decoding: $0, as: UTF8.self) }
        }
        defer { MergeBatch.renamesWithoutReplacing = true }
        for renames in [true, false] {
            MergeBatch.renamesWithoutReplacing = renames
            try write("new", "new")
            try MergeBatch.placeWithoutReplacing(dir + "/new", dir + "/t\(renames)")
            XCTAssertEqual(read("t\(renames)"), "new")
            XCTAssertNil(read("new"))
            try write("other", "other")
            XCTAssertThrowsError(try MergeBatch.placeWithoutReplacing(dir + "/other", dir + "/t\(renames)")) {
                XCTAssertEqual($0 as? Errno, Errno.fileExists)
            }
            XCTAssertEqual(read("t\(renames)"), "new")
            XCTAssertEqual(read("other"), "other")
            for name in ["new", "other"] { _ = try? system_unlink(dir + "/" + name) }
        }
    }

    /// Restoring into an empty directory: a full batch of new files is synced on another
    /// thread while the next is written. Its files are placed only when the next sync starts
    /// (or at the flush), each whole; a target written twice, the second time while the
    /// first waits in that sync, is handed back to be backfilled, never replaced; nothing is
    /// left behind.
    func testNewFilesAreSyncedInTheBackgroundAndPlacedOnlyOnceDurable() throws {
        let dir = NSTemporaryDirectory() + "bgsync-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        try Path.makeDirectories(dir)
        defer { BackupStateTests.remove(dir) }
        let (r, w) = try system_pipe()
        defer { system_close(r); system_close(w) }
        let batch = MergeBatch(limit: 64, createLimit: 3, output: RecordWriter(fd: w), diagnostics: Diagnostics(tool: "test", progress: false, quiet: true))
        func add(_ i: Int, _ byte: UInt8) throws {
            try [UInt8](repeating: byte, count: 1000 + i).withUnsafeBytes { try batch.addCreate(metric: "m\(i)", target: dir + "/m\(i).wsp", bytes: $0) }
        }
        func placed() -> [String] { ((try? system_readdir(dir)) ?? []).map(\.name).filter { !$0.hasPrefix(".") }.sorted() }
        for i in 0..<3 { try add(i, 1) }
        XCTAssertNotNil(batch.syncing, "a full batch of new files is synced in the background")
        XCTAssertEqual(placed(), [], "not placed before their sync returned")
        XCTAssertTrue(batch.holds(dir + "/m0.wsp"))
        XCTAssertFalse(batch.isEmpty)
        try add(0, 2)   // m0 again, while its first file waits in the sync
        for i in 3..<5 { try add(i, 1) }
        XCTAssertEqual(placed(), ["m0.wsp", "m1.wsp", "m2.wsp"], "placed when the next sync starts")
        XCTAssertEqual(batch.syncing?.batch.count, 3)
        batch.flush()
        XCTAssertNil(batch.syncing)
        XCTAssertTrue(batch.isEmpty)
        XCTAssertEqual(placed(), (0..<5).map { "m\($0).wsp" })
        for i in 0..<5 {
            let bytes = try FileDescriptor.open(dir + "/m\(i).wsp", O_RDONLY).closeAfterRead()
            XCTAssertTrue(bytes == [UInt8](repeating: 1, count: 1000 + i), "m\(i) whole, the first file's bytes")
        }
        let appeared = batch.takeAppeared()
        XCTAssertEqual(appeared.map(\.target), [dir + "/m0.wsp"])
        XCTAssertTrue(appeared.first?.source == [UInt8](repeating: 2, count: 1000))
        XCTAssertEqual(try system_readdir(dir).filter { $0.name.hasPrefix(".") }.map(\.name), [], "no temp file left")
    }
}
