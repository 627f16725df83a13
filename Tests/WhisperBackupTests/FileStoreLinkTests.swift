import XCTest
@testable import WhisperBackup

/// A restore's spool on a file:// store's filesystem gets each object as a hard link
/// (`Store.link`), and the spool never writes through such a file: emptied, reused or cut,
/// it would change the stored object.
final class FileStoreLinkTests: XCTestCase {
    var base: String!
    var spool: Spool!
    var store: FileStore!
    let layout = StoreLayout(prefix: "")

    override func setUpWithError() throws {
        base = NSTemporaryDirectory() + "filestore-link-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        spool = try Spool(dir: base + "/spool", maxBytes: 1 << 24, waitSeconds: 0.05)
        try Path.makeDirectories(base + "/store")
        store = FileStore(root: base + "/store", location: "file://" + base + "/store")
    }

    override func tearDown() { BackupStateTests.remove(base) }

    func contents(_ path: String) -> [UInt8]? { FileManager.default.contents(atPath: path).map { [UInt8]($0) } }

    /// Stores `bytes` as a version of `metric` and returns the version.
    func stored(_ metric: String, _ bytes: [UInt8]) throws -> StoredVersion {
        let hash = String(repeating: "ab", count: 32)
        let v = StoredVersion(metric: metric, time: 1_764_892_800, hash: hash, key: layout.key(metric: metric, time: 1_764_892_800, hash: hash))
        try store.put(v.key, body: .bytes(bytes))
        return v
    }

    func fetch(_ v: StoredVersion, from store: Store, into spool: Spool) throws -> String {
        try PullGet(store: store, layout: layout, spool: spool)
            .fetch(v, size: 0, diagnostics: Diagnostics(tool: "test", progress: false, quiet: true))
    }

    /// Small (kept with its blocks when discarded) and large (emptied when discarded): the
    /// spool file is the object's inode, and once the consumer is done the object is whole,
    /// has one name again, and the next spool file written is another file.
    func testAnObjectIsLinkedInAndNeverWrittenThrough() throws {
        for size in [300, Int(Spool.keepBlocksBytes) + 5000] {
            let bytes = (0..<size).map { UInt8(truncatingIfNeeded: $0 &* 7) }
            let v = try stored("m.size\(size)", bytes)
            let object = try store.path(v.key)
            let file = try fetch(v, from: RetryStore(store, attempts: 2), into: spool)
            XCTAssertEqual(try system_stat(file).st_ino, try system_stat(object).st_ino, "linked, not copied")
            XCTAssertEqual(try system_stat(object).st_nlink, 2)
            Spool.discard(file)
            XCTAssertFalse(Path.exists(file))
            XCTAssertEqual(try system_stat(object).st_nlink, 1, "not kept in the spool's free pool")
            XCTAssertTrue(contents(object) == bytes, "size \(size): the object was cut")
            let next = try [UInt8](repeating: 9, count: 100).withUnsafeBytes { try spool.write($0) }
            XCTAssertNotEqual(try system_stat(next).st_ino, try system_stat(object).st_ino)
            XCTAssertTrue(contents(object) == bytes, "size \(size): a spool write changed the object")
            Spool.discard(next)
        }
        XCTAssertEqual(try spool.withLedger { $0.used }, 0)
    }

    /// A linked file whose booking fails (gone before it was booked) is given up without
    /// emptying the object.
    func testAGivenUpReservationLeavesTheObjectWhole() throws {
        let bytes = [UInt8](repeating: 4, count: Int(Spool.keepBlocksBytes) * 2)
        let v = try stored("m.given.up", bytes)
        XCTAssertThrowsError(try spool.add(reserving: 10) { path in
            XCTAssertTrue(try store.link(v.key, as: path))
            throw RecordError("stop")
        })
        XCTAssertTrue(contents(try store.path(v.key)) == bytes)
        XCTAssertEqual(try system_stat(try store.path(v.key)).st_nlink, 1)
    }

    /// A reused spool file (an emptied one from the free pool) is replaced by the link, not
    /// written into.
    func testAReusedSpoolFileIsReplacedByTheLink() throws {
        let old = try [UInt8](repeating: 1, count: Int(Spool.keepBlocksBytes) * 2).withUnsafeBytes { try spool.write($0) }
        let oldInode = try system_stat(old).st_ino
        Spool.discard(old)
        XCTAssertEqual(try spool.withLedger { $0.free }, 1)
        let v = try stored("m.reused", [UInt8](repeating: 2, count: 500))
        let file = try fetch(v, from: store, into: spool)
        XCTAssertEqual(try system_stat(file).st_ino, try system_stat(try store.path(v.key)).st_ino)
        XCTAssertNotEqual(try system_stat(file).st_ino, oldInode)
        XCTAssertTrue(contents(file) == [UInt8](repeating: 2, count: 500))
        Spool.discard(file)
    }

    /// A spool on another filesystem (a tmpfs) gets a copy, written into the reused spool file
    /// (no link tried there, and no spool file unlinked for it); a missing object fails as
    /// `get` does, and leaves nothing in the spool.
    func testAnotherFilesystemCopiesAndAMissingObjectFails() throws {
        let v = try stored("m.copied", [UInt8](repeating: 3, count: 700))
        if let shm = try? system_stat("/dev/shm"), shm.st_dev != (try system_stat(store.root)).st_dev, access("/dev/shm", W_OK) == 0 {
            let other = try Spool(dir: "/dev/shm/filestore-link-\(getpid())-\(UInt32.random(in: 0...UInt32.max))", maxBytes: 1 << 20, waitSeconds: 0.05)
            defer { BackupStateTests.remove(other.dir) }
            for round in 0..<3 {
                let reused = round == 0 ? nil : try other.withLedger { $0.free } == 1 ? system_stat(other.dir + "/\(Spool.freePrefix)0").st_ino : nil
                let file = try fetch(v, from: store, into: other)
                XCTAssertNotEqual(try system_stat(file).st_ino, try system_stat(try store.path(v.key)).st_ino)
                XCTAssertTrue(contents(file) == [UInt8](repeating: 3, count: 700))
                XCTAssertEqual(try system_stat(try store.path(v.key)).st_nlink, 1)
                if round > 0 { XCTAssertEqual(try system_stat(file).st_ino, reused, "round \(round): the free spool file was not reused") }
                Spool.discard(file)
            }
        }
        var missing = v
        missing.key = layout.key(metric: "m.none", time: v.time, hash: v.hash)
        XCTAssertThrowsError(try fetch(missing, from: store, into: spool)) { error in
            XCTAssertEqual((error as? StoreError)?.kind, .notFound, "\(error)")
        }
        XCTAssertThrowsError(try store.link(missing.key, as: spool.dir + "/x")) { error in
            XCTAssertEqual((error as? StoreError)?.kind, .notFound, "\(error)")
        }
        XCTAssertEqual(spool.usage(), 0)
    }
}
