import XCTest
@testable import WhisperBackup

/// A file:// batch moves spool files in instead of copying them (`StoreBody.spoolFile`), and
/// only when the store ends up as a copy would have left it.
final class FileStoreMoveTests: XCTestCase {
    var spool: Spool!
    var store: FileStore!

    override func setUpWithError() throws {
        let base = NSTemporaryDirectory() + "filestore-move-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        spool = try Spool(dir: base + "/spool", maxBytes: 1 << 20, waitSeconds: 0.05)
        try Path.makeDirectories(base + "/store")
        store = FileStore(root: base + "/store", location: "file://" + base + "/store")
    }

    func spoolFile(_ byte: UInt8, _ count: Int) throws -> String {
        try [UInt8](repeating: byte, count: count).withUnsafeBytes { try spool.write($0) }
    }

    func contents(_ path: String) -> [UInt8]? { FileManager.default.contents(atPath: path).map { [UInt8]($0) } }

    /// Each spool file becomes the stored object itself (same inode: its bytes are not written
    /// twice), with the mode a copy gets; the spool's room comes back by the sizes given.
    func testABatchMovesSpoolFilesIn() throws {
        let files = try [spoolFile(1, 500), spoolFile(2, 70_000)]
        let inodes = try files.map { try system_stat($0).st_ino }
        XCTAssertEqual(try spool.withLedger { $0.used }, 70_500)
        let results = store.putMany([("m.a/1", .spoolFile(files[0])), ("m.b/1", .spoolFile(files[1]))])
        XCTAssertTrue(results.allSatisfy { $0 == nil }, "\(results)")
        for (key, (file, inode)) in zip(["m.a/1", "m.b/1"], zip(files, inodes)) {
            let stored = try store.path(key)
            XCTAssertFalse(Path.exists(file), "moved, not copied")
            XCTAssertEqual(try system_stat(stored).st_ino, inode)
            XCTAssertEqual(try system_stat(stored).st_mode & 0o777, system_creationMode(0o644))
        }
        XCTAssertEqual(contents(try store.path("m.a/1")), [UInt8](repeating: 1, count: 500))
        XCTAssertEqual(contents(try store.path("m.b/1")), [UInt8](repeating: 2, count: 70_000))
        Spool.discard([(files[0], Int64(500)), (files[1], Int64(70_000))])
        XCTAssertEqual(try spool.withLedger { $0.used }, 0, "the moved files' room is free again")
        XCTAssertEqual(spool.usage(), 0)
    }

    /// A spool file with a second name is copied: moved, the object would change whenever
    /// the file did through that name.
    func testAHardLinkedSpoolFileIsCopied() throws {
        let file = try spoolFile(3, 900)
        let other = file + ".link"
        XCTAssertEqual(link(file, other), 0)
        let results = store.putMany([("m.a/1", .spoolFile(file)), ("m.b/1", .spoolFile(try spoolFile(4, 10)))])
        XCTAssertTrue(results.allSatisfy { $0 == nil }, "\(results)")
        XCTAssertTrue(Path.exists(file))
        XCTAssertNotEqual(try system_stat(try store.path("m.a/1")).st_ino, try system_stat(file).st_ino)
        let fd = try FileDescriptor.open(other, O_WRONLY)
        try fd.closeAfter { try [UInt8](repeating: 9, count: 900).withUnsafeBytes { try fd.write($0, at: 0) } }
        XCTAssertEqual(contents(try store.path("m.a/1")), [UInt8](repeating: 3, count: 900))
    }

    /// A spool on another filesystem than the store (a tmpfs, say): the rename cannot cross
    /// it (EXDEV), so each file is copied, whole, and stays in the spool for its discard.
    func testASpoolOnAnotherFilesystemIsCopied() throws {
        guard let shm = try? system_stat("/dev/shm"), let here = try? system_stat(store.root),
              shm.st_dev != here.st_dev, access("/dev/shm", W_OK) == 0 else {
            throw XCTSkip("no writable /dev/shm on another filesystem than \(store.root)")
        }
        let other = try Spool(dir: "/dev/shm/filestore-move-\(getpid())-\(UInt32.random(in: 0...UInt32.max))",
                              maxBytes: 1 << 20, waitSeconds: 0.05)
        addTeardownBlock { BackupStateTests.remove(other.dir) }
        let files = try [(5, 300), (6, 80_000)].map { b, n in
            try [UInt8](repeating: UInt8(b), count: n).withUnsafeBytes { try other.write($0) }
        }
        let results = store.putMany([("m.a/1", .spoolFile(files[0])), ("m.b/1", .spoolFile(files[1]))])
        XCTAssertTrue(results.allSatisfy { $0 == nil }, "\(results)")
        XCTAssertEqual(contents(try store.path("m.a/1")), [UInt8](repeating: 5, count: 300))
        XCTAssertEqual(contents(try store.path("m.b/1")), [UInt8](repeating: 6, count: 80_000))
        for f in files { XCTAssertTrue(Path.exists(f), "copied, not moved: \(f)") }
        XCTAssertEqual(try system_stat(try store.path("m.b/1")).st_mode & 0o777, system_creationMode(0o644))
        XCTAssertEqual(try system_readdir(Path.directory(of: try store.path("m.a/1"))).map(\.name), ["1"], "no temp file left")
    }

    /// A spool on a bind mount of the store's filesystem: same device, but a rename across
    /// mounts fails (EXDEV) after the first sync; those files are copied in a second round,
    /// whole, with a copy's mode, and stay in the spool, private.
    func testASpoolOnABindMountIsCopiedInASecondRound() throws {
        let base = Path.directory(of: store.root)
        let real = base + "/spool-real", mounted = base + "/spool-mounted"
        try Path.makeDirectories(real)
        try Path.makeDirectories(mounted)
        guard geteuid() == 0, Self.run("/bin/mount", ["--bind", real, mounted]) == 0 else {
            throw XCTSkip("cannot bind-mount here (needs root)")
        }
        addTeardownBlock { _ = Self.run("/bin/umount", [mounted]) }
        let other = try Spool(dir: mounted + "/spool", maxBytes: 1 << 20, waitSeconds: 0.05)
        let files = try [(5, 300), (6, 80_000)].map { b, n in
            try [UInt8](repeating: UInt8(b), count: n).withUnsafeBytes { try other.write($0) }
        }
        XCTAssertEqual(try system_stat(files[0]).st_dev, try system_stat(store.root).st_dev, "a bind mount keeps the device")
        let results = store.putMany([("m.a/1", .spoolFile(files[0])), ("m.b/1", .spoolFile(files[1]))])
        XCTAssertTrue(results.allSatisfy { $0 == nil }, "\(results)")
        XCTAssertTrue(contents(try store.path("m.a/1")) == [UInt8](repeating: 5, count: 300))
        XCTAssertTrue(contents(try store.path("m.b/1")) == [UInt8](repeating: 6, count: 80_000))
        for f in files {
            XCTAssertTrue(Path.exists(f), "copied, not moved: \(f)")
            XCTAssertEqual(try system_stat(f).st_mode & 0o777, 0o600)
        }
        XCTAssertEqual(try system_stat(try store.path("m.b/1")).st_mode & 0o777, system_creationMode(0o644))
        XCTAssertEqual(try system_readdir(Path.directory(of: try store.path("m.a/1"))).map(\.name), ["1"], "no temp file left")
        // A restore's spool there: no link (EXDEV), so the caller copies, every time.
        for name in ["x", "y"] {
            XCTAssertFalse(try store.link("m.a/1", as: mounted + "/spool/" + name))
            XCTAssertFalse(Path.exists(mounted + "/spool/" + name))
        }
        XCTAssertEqual(try system_stat(try store.path("m.a/1")).st_nlink, 1)
    }

    static func run(_ tool: String, _ args: [String]) -> Int32 {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: tool)
        p.arguments = args
        p.standardError = FileHandle.nullDevice
        guard (try? p.run()) != nil else { return -1 }
        p.waitUntilExit()
        return p.terminationStatus
    }

    /// An object that cannot be stored (its name is taken by a directory) leaves its spool
    /// file where it was, whole and private again, so that a retry can send it; the others
    /// are stored.
    func testAnObjectNotStoredGivesItsSpoolFileBack() throws {
        try Path.makeDirectories(Path.join(store.root, "m.a/1/taken"))
        let files = try [spoolFile(5, 600), spoolFile(6, 700)]
        let inode = try system_stat(files[0]).st_ino
        let results = store.putMany([("m.a/1", .spoolFile(files[0])), ("m.b/1", .spoolFile(files[1]))])
        XCTAssertNotNil(results[0])
        XCTAssertNil(results[1])
        XCTAssertEqual(contents(files[0]), [UInt8](repeating: 5, count: 600))
        XCTAssertEqual(try system_stat(files[0]).st_ino, inode)
        XCTAssertEqual(try system_stat(files[0]).st_mode & 0o777, 0o600)
        XCTAssertEqual(contents(try store.path("m.b/1")), [UInt8](repeating: 6, count: 700))
        let left = try FileManager.default.contentsOfDirectory(atPath: Path.join(store.root, "m.a"))
        XCTAssertEqual(left, ["1"], "no temp file left beside the directory")
    }

    /// A plain file (a record naming a file of the user's) is always copied.
    func testAFileBodyIsNeverMoved() throws {
        let file = try spoolFile(7, 300)
        let results = store.putMany([("m.a/1", .file(file)), ("m.b/1", .file(file))])
        XCTAssertTrue(results.allSatisfy { $0 == nil }, "\(results)")
        XCTAssertEqual(contents(file), [UInt8](repeating: 7, count: 300))
        XCTAssertEqual(contents(try store.path("m.b/1")), [UInt8](repeating: 7, count: 300))
    }
}
