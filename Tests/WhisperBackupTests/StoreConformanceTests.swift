import XCTest
@testable import WhisperBackup

/// The Store contract, run against every backend that is reachable: file:// always;
/// s3:// and swift:// when WSP_TEST_STORE_URLS names stores (space-separated URLs, with
/// credentials in the environment as usual).
final class StoreConformanceTests: XCTestCase {
    func stores() throws -> [(Store, StoreLayout)] {
        let dir = NSTemporaryDirectory() + "conformance-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        try Path.makeDirectories(dir)
        var urls = ["file://" + dir]
        if let extra = ProcessInfo.processInfo.environment["WSP_TEST_STORE_URLS"] {
            urls += extra.split(separator: " ").map { String($0) + "/conformance-\(getpid())-\(UInt32.random(in: 0...UInt32.max))/" }
        }
        var settings = StoreSettings()
        settings.createMissing = true
        return try urls.map { try StoreRegistry.open($0, settings: settings) }
    }

    /// Without real stores only file:// is checked: say so, as a skipped test in the summary.
    func testRealStoresAreChecked() throws {
        if (ProcessInfo.processInfo.environment["WSP_TEST_STORE_URLS"] ?? "").isEmpty {
            throw XCTSkip("NOT COVERED: the store contract ran against file:// only; s3:// and swift:// need WSP_TEST_STORE_URLS (scripts/test.sh starts the servers and sets it)")
        }
    }

    func testPutGetHeadListDelete() throws {
        for (store, layout) in try stores() {
            let scratch = NSTemporaryDirectory()
            let keys = ["m.a b/1", "m.a/2", "m.a/1", "m.a+/x", "m.é/1", "n/1"].map { layout.prefix + $0 }
            for (i, k) in keys.enumerated() {
                try store.put(k, body: .bytes(Array("object \(i)".utf8)))
            }
            XCTAssertEqual(try store.getBytes(keys[1], scratchDir: scratch), Array("object 1".utf8), store.location)
            XCTAssertEqual(try store.head(keys[0])?.size, 8)
            XCTAssertNil(try store.head(layout.prefix + "m.a/none"))
            XCTAssertThrowsError(try store.getBytes(layout.prefix + "m.a/none", scratchDir: scratch)) { e in
                XCTAssertEqual((e as? StoreError)?.kind, .notFound, "\(store.location): \(e)")
            }
            var listed: [String] = []
            try store.list(prefix: layout.prefix + "m.a") { listed.append($0.key) }
            let expected = keys.filter { $0.hasPrefix(layout.prefix + "m.a") }.sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) }
            XCTAssertEqual(listed, expected, store.location)
            // without sizes: the same keys, each with its size or -1 (file:// stats none)
            var sized: [(String, Int64)] = []
            try store.list(prefix: layout.prefix + "m.a", startAfter: nil, sizes: false) { sized.append(($0.key, $0.size)) }
            XCTAssertEqual(sized.map(\.0), expected, store.location)
            for (key, size) in sized {
                let real = Int64(("object \(keys.firstIndex(of: key)!)").utf8.count)
                XCTAssertTrue(size == real || (size == -1 && store.location.hasPrefix("file://")), "\(store.location) \(key): \(size)")
            }
            // a listing that starts after a key (S3 start-after, Swift marker), whether or not
            // the key exists, and one ended by its caller
            for start in [expected[0], layout.prefix + "m.a b/0", layout.prefix + "m.a/1"] {
                listed = []
                try store.list(prefix: layout.prefix + "m.a", startAfter: start) { listed.append($0.key) }
                XCTAssertEqual(listed, expected.filter { start.utf8.lexicographicallyPrecedes($0.utf8) }, "\(store.location) after \(start)")
            }
            struct Enough: Error {}
            listed = []
            XCTAssertThrowsError(try store.list(prefix: layout.prefix) { listed.append($0.key); if listed.count == 2 { throw Enough() } }) {
                XCTAssertTrue($0 is Enough, "\($0)")
            }
            XCTAssertEqual(listed.count, 2)
            // replace is atomic and whole
            try store.put(keys[1], body: .bytes(Array("replaced".utf8)))
            XCTAssertEqual(try store.getBytes(keys[1], scratchDir: scratch), Array("replaced".utf8))
            let failed = try store.delete(keys + [layout.prefix + "m.a/never-existed"])
            XCTAssertTrue(failed.isEmpty, "\(failed)")
            listed = []
            try store.list(prefix: layout.prefix) { listed.append($0.key) }
            XCTAssertEqual(listed, [], store.location)
        }
    }

    /// A directory of more names than a page is read page by page (one pass over it each),
    /// and the listing is the same: every key once, in ascending byte order.
    func testAFileStoreListsADirectoryOfManyPagesInOrder() throws {
        let dir = NSTemporaryDirectory() + "pages-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        let store = FileStore(root: dir, location: "file://" + dir)
        try store.create()
        var keys: [String] = []
        for i in 0..<40 {
            // Directories ("m.5/") against files ("m.5.x", "m.5 x") that sort between them
            // only with the slash: "/" sorts after "." and " ".
            keys += ["m.\(i)/v", "m.\(i).x", "m.\(i) x", "é\(i)"]
        }
        for k in keys { try store.put(k, body: .bytes([1])) }
        // Neither a symlink nor a FIFO is an object, with sizes or without.
        XCTAssertEqual(symlink(dir + "/m.1/v", dir + "/m.1/link"), 0)
        XCTAssertEqual(mkfifo(dir + "/m.1/fifo", 0o600), 0)
        let expected = keys.sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) }
        for page in [1, 3, 7, 1000] {
            store.pageEntries = page
            var listed: [String] = []
            try store.list(prefix: "") { listed.append($0.key) }
            XCTAssertEqual(listed, expected, "page of \(page)")
            listed = []
            try store.list(prefix: "", startAfter: nil, sizes: false) { listed.append($0.key) }
            XCTAssertEqual(listed, expected, "page of \(page), without sizes")
            listed = []
            try store.list(prefix: "m.1", startAfter: "m.1 x") { listed.append($0.key) }
            XCTAssertEqual(listed, expected.filter { $0.hasPrefix("m.1") && "m.1 x".utf8.lexicographicallyPrecedes($0.utf8) }, "page of \(page)")
        }
        _ = try store.delete(keys + ["m.1/link", "m.1/fifo"])
    }

    func testPutFromFile() throws {
        for (store, layout) in try stores() {
            let src = NSTemporaryDirectory() + "src-\(getpid())"
            let data = (0..<300_000).map { UInt8(truncatingIfNeeded: $0 &* 31) }
            try AtomicFile.write(src, bytes: data, placement: .replace)
            try store.put(layout.prefix + "f/big", body: .file(src))
            XCTAssertEqual(try store.getBytes(layout.prefix + "f/big", scratchDir: NSTemporaryDirectory()), data)
            _ = try store.delete([layout.prefix + "f/big"])
        }
    }

    /// A spool file given up to a batch is stored whole whether the store moves it in
    /// (file://) or sends it; what is stored no longer changes with the spool's name.
    func testPutManyOfSpoolFiles() throws {
        for (store, layout) in try stores() {
            let spool = NSTemporaryDirectory() + "spool-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
            try Path.makeDirectories(spool)
            let contents = (0..<3).map { i in (0..<(1000 + i * 70_000)).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ i) } }
            var items: [(key: String, body: StoreBody)] = []
            for (i, data) in contents.enumerated() {
                let path = Path.join(spool, "\(getpid()).\(i).wsp.gz")
                try AtomicFile.write(path, bytes: data, placement: .replace)
                items.append((layout.prefix + "s/\(i)", .spoolFile(path)))
            }
            XCTAssertTrue(store.putMany(items).allSatisfy { $0 == nil })
            for (i, data) in contents.enumerated() {
                let path = Path.join(spool, "\(getpid()).\(i).wsp.gz")
                if Path.exists(path) { try AtomicFile.write(path, bytes: [1, 2, 3], placement: .replace) }
                XCTAssertEqual(try store.getBytes(layout.prefix + "s/\(i)", scratchDir: NSTemporaryDirectory()), data)
            }
            _ = try store.delete(items.map(\.key))
        }
    }
}
