import XCTest
@testable import WhisperBackup
#if canImport(Glibc)
import Glibc
#endif

/// `wsp-snap` has the files it will read next read into the page cache by `ReadAhead`: what
/// that thread reads, and what it leaves alone, seen in the page cache itself (mincore(2)).
final class ReadAheadTests: XCTestCase {
    var dir: String!
    static let size = 256 * 1024

    override func setUpWithError() throws {
        // On a disk: a tmpfs keeps every page in memory, so nothing could be seen read.
        dir = "/var/tmp/readahead-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        try Path.makeDirectories(dir)
        if try system_statfs(dir).type == 0x0102_1994 { throw XCTSkip("/var/tmp is a tmpfs") }
    }

    override func tearDown() { BackupStateTests.remove(dir) }

    /// A file of random bytes, written out and then dropped from the page cache.
    func coldFile(_ name: String) throws -> String {
        let path = Path.join(dir, name)
        let fd = try FileDescriptor.open(path, O_RDWR | O_CREAT | O_TRUNC)
        try fd.closeAfter {
            let bytes = (0..<Self.size).map { _ in UInt8.random(in: 0...255) }
            try bytes.withUnsafeBytes { try fd.writeAll($0) }
            try system_fsync(fd.rawValue)
            _ = posix_fadvise(fd.rawValue, 0, 0, POSIX_FADV_DONTNEED)
        }
        guard try resident(path) == 0 else { throw XCTSkip("this filesystem keeps a file's pages when asked to drop them") }
        return path
    }

    /// How many of the file's pages are in the page cache.
    func resident(_ path: String) throws -> Int {
        let fd = try FileDescriptor.open(path, O_RDONLY)
        return try fd.closeAfter {
            let map = mmap(nil, Self.size, PROT_READ, MAP_SHARED, fd.rawValue, 0)
            guard let map, map != MAP_FAILED else { throw Errno(errno, call: "mmap", path: path) }
            defer { munmap(map, Self.size) }
            let pageSize = Int(sysconf(Int32(_SC_PAGESIZE)))
            var pages = [UInt8](repeating: 0, count: (Self.size + pageSize - 1) / pageSize)
            guard mincore(map, Self.size, &pages) == 0 else { throw Errno(errno, call: "mincore", path: path) }
            return pages.filter { $0 & 1 != 0 }.count
        }
    }

    /// Waits up to five seconds for every page of `path` to be in the cache.
    func waitUntilCached(_ path: String) throws -> Bool {
        let pages = (Self.size + Int(sysconf(Int32(_SC_PAGESIZE))) - 1) / Int(sysconf(Int32(_SC_PAGESIZE)))
        for _ in 0..<500 {
            if try resident(path) == pages { return true }
            usleep(10_000)
        }
        return false
    }

    func entry(_ path: String) throws -> StateEntry {
        let st = try system_stat(path)
        return StateEntry(size: Int64(st.st_size), inode: UInt64(st.st_ino), device: UInt64(st.st_dev),
                          mtimeNs: st.mtimeNanoseconds, ctimeNs: st.ctimeNanoseconds, hash: "", time: 0, storedSize: 0)
    }

    func testAFileAheadOfTheStageIsReadIntoTheCache() throws {
        let path = try coldFile("a.wsp")
        let readAhead = try XCTUnwrap(ReadAhead())
        readAhead.add(.init(path: path, unless: nil), index: 0)
        readAhead.flush()
        XCTAssertTrue(try waitUntilCached(path))
        readAhead.finish()
    }

    /// Without a flush the thread is woken once `wakeBatch` files wait for it, and takes them.
    func testTheThreadIsWokenForABatchOfFiles() throws {
        let paths = try (0..<ReadAhead.wakeBatch).map { try coldFile("batch\($0).wsp") }
        let readAhead = try XCTUnwrap(ReadAhead())
        for (i, path) in paths.enumerated() { readAhead.add(.init(path: path, unless: nil), index: i) }
        for path in paths { XCTAssertTrue(try waitUntilCached(path), path) }
        readAhead.finish()
    }

    /// The state shows the file unchanged (the stage will only stat it): nothing is read; the
    /// same file changed since (another size) is read. Each is followed by a marker file whose
    /// arrival in the cache shows the thread went past it (it takes the files in order).
    func testAFileTheStateShowsUnchangedIsNotRead() throws {
        let unchanged = try coldFile("unchanged.wsp"), changed = try coldFile("changed.wsp"), marker = try coldFile("marker.wsp")
        var stale = try entry(changed)
        stale.size -= 1
        let readAhead = try XCTUnwrap(ReadAhead())
        readAhead.add(.init(path: unchanged, unless: try entry(unchanged)), index: 0)
        readAhead.add(.init(path: changed, unless: stale), index: 1)
        readAhead.add(.init(path: marker, unless: nil), index: 2)
        readAhead.flush()
        XCTAssertTrue(try waitUntilCached(marker))
        readAhead.finish()
        XCTAssertEqual(try resident(unchanged), 0)
        XCTAssertTrue(try waitUntilCached(changed))
    }

    /// A file the stage has already reached is not worth reading any more.
    func testFilesTheStageHasReachedAreSkipped() throws {
        let passed = try coldFile("passed.wsp"), marker = try coldFile("marker.wsp")
        let readAhead = try XCTUnwrap(ReadAhead())
        readAhead.reach(5)
        readAhead.add(.init(path: passed, unless: nil), index: 5)
        readAhead.add(.init(path: marker, unless: nil), index: 6)
        readAhead.flush()
        XCTAssertTrue(try waitUntilCached(marker))
        readAhead.finish()
        XCTAssertEqual(try resident(passed), 0)
    }

    /// A FIFO or a missing file ahead costs nothing and blocks nothing.
    func testAFifoOrAMissingFileIsPassedOver() throws {
        let fifo = Path.join(dir, "fifo.wsp"), marker = try coldFile("marker.wsp")
        XCTAssertEqual(mkfifo(fifo, 0o600), 0)
        let readAhead = try XCTUnwrap(ReadAhead())
        readAhead.add(.init(path: fifo, unless: nil), index: 0)
        readAhead.add(.init(path: Path.join(dir, "missing.wsp"), unless: nil), index: 1)
        readAhead.add(.init(path: marker, unless: nil), index: 2)
        readAhead.flush()
        XCTAssertTrue(try waitUntilCached(marker))
        readAhead.finish()
    }
}
