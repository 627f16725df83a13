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
}
