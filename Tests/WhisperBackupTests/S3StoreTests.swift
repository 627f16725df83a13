import Foundation
import XCTest
@testable import WhisperBackup

/// S3Store against faultproxy.py's in-memory S3 (no signatures checked there: the
/// integration tests run against real servers that check them).
final class S3StoreTests: XCTestCase {
    var tmp = ""

    override func setUpWithError() throws {
        tmp = NSTemporaryDirectory() + "s3-tests-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        try FileManager.default.createDirectory(atPath: tmp, withIntermediateDirectories: true)
    }

    override func tearDown() { try? FileManager.default.removeItem(atPath: tmp) }

    /// The bucket's S3Store, prepared through the registry's wrappers.
    func open(_ proxy: FaultProxy, bucket: String = "bkt", create: Bool = true, retries: Int = 5,
              virtualHosted: Bool = false) throws -> S3Store {
        let s3 = try S3Store(config: config(proxy, bucket: bucket, virtualHosted: virtualHosted))
        _ = try StoreRegistry.wrap(s3, settings: settings(create: create, retries: retries))
        return s3
    }

    func settings(create: Bool = true, dryRun: Bool = false, retries: Int = 5) -> StoreSettings {
        var s = StoreSettings()
        s.createMissing = create
        s.dryRun = dryRun
        s.retries = retries
        return s
    }

    func config(_ proxy: FaultProxy, bucket: String = "bkt", virtualHosted: Bool = false) throws -> S3Config {
        var s = StoreSettings()
        s.endpoint = virtualHosted ? "http://localhost:\(proxy.port)" : proxy.base
        if virtualHosted { s.pathStyle = false }
        let env = ["AWS_ACCESS_KEY_ID": "AKIDTEST", "AWS_SECRET_ACCESS_KEY": "testsecret", "HOME": "/nonexistent"]
        return try S3Config(url: StoreURL("s3://\(bucket)/pre"), settings: s, environment: { env[$0] })
    }

    func keys(_ store: Store, _ prefix: String = "") throws -> [String] {
        var out: [String] = []
        try store.list(prefix: prefix) { out.append($0.key) }
        return out
    }

    func testMissingBucketIsAClearConfigurationError() throws {
        let proxy = try FaultProxy()
        defer { proxy.stop() }
        XCTAssertThrowsError(try open(proxy, create: false)) { e in
            XCTAssertTrue(e is ConfigError)
            XCTAssertEqual("\(e)", "s3://bkt/pre: list: bucket bkt does not exist (create it, or pass --create-bucket)")
        }
        // --dry-run --create-bucket: the store reads as empty and nothing is created.
        let dry = try StoreRegistry.wrap(S3Store(config: config(proxy)), settings: settings(dryRun: true))
        XCTAssertEqual(try keys(dry), [])
        XCTAssertNil(try dry.head("pre/x"))
        XCTAssertEqual(proxy.log().filter { $0[0] == "PUT" }.count, 0)
        // --create-bucket creates it, once.
        _ = try open(proxy)
        _ = try open(proxy, create: false)
        XCTAssertEqual(proxy.log().filter { $0[0] == "PUT" }.map { $0[1] }, ["/bkt"])
    }

    func testObjectsRoundTripWithAwkwardKeys() throws {
        let proxy = try FaultProxy()
        defer { proxy.stop() }
        let store = try open(proxy)
        let names = ["pre/a b/1", "pre/c+d/2", "pre/e:f/3", "pre/g%h/4", "pre/ünï/5", "pre/~x/6", "pre/sp  two/7", "pre/q?x=1&y/8", "pre/日本/9"]
        for (i, k) in names.enumerated() { try store.put(k, body: .bytes(Array("body \(i)".utf8))) }
        let src = tmp + "/src"
        try Data(repeating: 0x42, count: 200_000).write(to: URL(fileURLWithPath: src))
        try store.put("pre/file", body: .file(src))
        XCTAssertEqual(try keys(store, "pre/"), (names + ["pre/file"]).sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) })
        for (i, k) in names.enumerated() {
            try store.get(k, to: tmp + "/out")
            XCTAssertEqual(try String(contentsOfFile: tmp + "/out", encoding: .utf8), "body \(i)", k)
            XCTAssertEqual(try store.head(k)?.size, Int64("body \(i)".utf8.count))
        }
        try store.get("pre/file", to: tmp + "/out")
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: tmp + "/out")).count, 200_000)
        XCTAssertNil(try store.head("pre/none"))
        XCTAssertThrowsError(try store.get("pre/none", to: tmp + "/out")) { e in
            XCTAssertEqual((e as? StoreError)?.kind, .notFound, "\(e)")
        }
        // The key as the server saw it: each segment encoded once.
        XCTAssertTrue(proxy.log().contains { $0[0] == "PUT" && $0[1] == "/bkt/pre/g%25h/4" })
        XCTAssertTrue(proxy.log().contains { $0[0] == "PUT" && $0[1] == "/bkt/pre/c%2Bd/2" })
    }

    func testVirtualHostedAddressing() throws {
        // libcurl resolves *.localhost to the loopback address itself.
        let proxy = try FaultProxy()
        defer { proxy.stop() }
        let store = try open(proxy, bucket: "vbkt", virtualHosted: true)
        try store.put("pre/a b", body: .bytes(Array("v".utf8)))
        XCTAssertEqual(try keys(store, "pre/"), ["pre/a b"])
        XCTAssertEqual(try store.head("pre/a b")?.size, 1)
        XCTAssertEqual(try store.delete(["pre/a b"]).count, 0)
        let log = proxy.log()
        XCTAssertTrue(log.contains { $0[0] == "PUT" && $0[1] == "/" }, "bucket created at /: \(log)")
        XCTAssertTrue(log.contains { $0[0] == "PUT" && $0[1] == "/pre/a%20b" }, "\(log)")
        XCTAssertTrue(log.contains { $0[0] == "POST" && $0[1] == "/?delete=" }, "\(log)")
    }

    func testListingPagesAndBatchDeletes() throws {
        let proxy = try FaultProxy(extra: ["--max-keys", "100"])
        defer { proxy.stop() }
        let store = try open(proxy)
        let all = (0..<250).map { String(format: "pre/m%03d/v", $0) }
        for k in all { try store.put(k, body: .bytes([1])) }
        try store.put("other/x", body: .bytes([1]))
        XCTAssertEqual(try keys(store, "pre/"), all)
        let lists = proxy.log().filter { $0[0] == "GET" && $0[1].contains("list-type=2") && !$0[1].contains("max-keys") }
        XCTAssertEqual(lists.count, 3, "250 keys in pages of 100")

        // 1001+ keys go in two DeleteObjects requests; per-key errors come back; missing keys count as deleted.
        let doomed = all + (0..<800).map { "pre/absent\($0)" } + ["pre/FAILME"]
        try store.put("pre/FAILME", body: .bytes([1]))
        let failed = try store.delete(doomed)
        XCTAssertEqual(failed.map(\.key), ["pre/FAILME"])
        XCTAssertEqual((failed.first?.error as? StoreError)?.kind, .transient)
        XCTAssertTrue("\(failed[0].error)".contains("InternalError"))
        XCTAssertEqual(proxy.log().filter { $0[0] == "POST" }.count, 2)
        XCTAssertEqual(try keys(store, "pre/"), ["pre/FAILME"])
        XCTAssertEqual(try store.delete([]).count, 0)
        // A key XML cannot carry goes as a single DELETE.
        try store.put("pre/ctl\u{1}x", body: .bytes([1]))
        XCTAssertEqual(try store.delete(["pre/ctl\u{1}x"]).count, 0)
        XCTAssertEqual(try keys(store, "pre/c"), [])
    }

    func testServerWithoutDeleteObjectsGetsSingleDeletes() throws {
        let proxy = try FaultProxy(extra: ["--no-multi-delete"])
        defer { proxy.stop() }
        let store = try open(proxy)
        for i in 0..<5 { try store.put("pre/k\(i)", body: .bytes([1])) }
        XCTAssertEqual(try store.delete((0..<5).map { "pre/k\($0)" } + ["pre/absent"]).count, 0)
        XCTAssertEqual(try store.delete(["pre/k9"]).count, 0)
        XCTAssertEqual(try keys(store, "pre/"), [])
        let log = proxy.log()
        XCTAssertEqual(log.filter { $0[0] == "POST" }.count, 1, "asked once, then remembered")
        XCTAssertEqual(log.filter { $0[0] == "DELETE" }.count, 7)
    }

    func testBrokenListingsFailInsteadOfLoopingOrEndingEarly() throws {
        for (bug, expected) in [("no-token", "without a continuation token"), ("repeat-token", "the listing went round"), ("unsorted", "out of order")] {
            let proxy = try FaultProxy(extra: ["--max-keys", "2", "--listing-bug", bug])
            defer { proxy.stop() }
            let store = try open(proxy)
            for i in 0..<5 { try store.put("pre/k\(i)", body: .bytes([1])) }
            XCTAssertThrowsError(try keys(store, "pre/"), bug) { e in
                XCTAssertEqual((e as? StoreError)?.kind, .permanent, bug)
                XCTAssertTrue("\(e)".contains(expected), "\(bug): \(e)")
            }
        }
    }

    func testCorruptDownloadIsTransient() throws {
        let proxy = try FaultProxy(extra: ["--corrupt-get"])
        defer { proxy.stop() }
        let store = try open(proxy)
        try store.put("pre/k", body: .bytes(Array("precious bytes".utf8)))
        XCTAssertThrowsError(try store.get("pre/k", to: tmp + "/out")) { e in
            XCTAssertEqual((e as? StoreError)?.kind, .transient, "\(e)")
            XCTAssertTrue("\(e)".contains("do not match the object's ETag"), "\(e)")
        }
    }

    func testFaultsAreRetriedThroughRetryStore() throws {
        // Every request is dropped, then answered 503 SlowDown, then 500, before it passes.
        let proxy = try FaultProxy(faults: "drop,503,500", match: "^(GET|PUT|POST|HEAD) /bkt[/?]")
        defer { proxy.stop() }
        let s3 = try open(proxy)
        let store = RetryStore(s3, attempts: 6, firstDelay: 0.01, maxDelay: 0.05)
        try store.put("pre/a", body: .bytes(Array("A".utf8)))
        try store.get("pre/a", to: tmp + "/a")
        XCTAssertEqual(try String(contentsOfFile: tmp + "/a", encoding: .utf8), "A")
        XCTAssertEqual(try store.head("pre/a")?.size, 1)
        XCTAssertEqual(try store.delete(["pre/a"]).count, 0)
        let faults = proxy.log().map { $0[3] }
        XCTAssertGreaterThanOrEqual(faults.filter { $0 == "503" }.count, 4, "\(faults)")
        // Without retries the first fault surfaces, classified transient.
        let bare = try FaultProxy(faults: "503", match: "^PUT /bkt/")
        defer { bare.stop() }
        XCTAssertThrowsError(try open(bare).put("pre/b", body: .bytes([1]))) { e in
            XCTAssertEqual((e as? StoreError)?.kind, .transient)
            XCTAssertTrue("\(e)".contains("HTTP 503 SlowDown"), "\(e)")
        }
    }

    func testErrorClassification() throws {
        let proxy = try FaultProxy()
        defer { proxy.stop() }
        let store = try open(proxy)
        func kind(_ status: Int, _ code: String) -> (StoreError.Kind, String) {
            let e = store.classify(status: status, code: code, message: "msg with testsecret and AKIDTEST\nsecond line", what: "PUT k").error
            return (e.kind, e.message)
        }
        XCTAssertEqual(kind(404, "NoSuchKey").0, .notFound)
        XCTAssertEqual(kind(404, "NoSuchBucket").0, .permanent)
        XCTAssertEqual(kind(503, "SlowDown").0, .transient)
        XCTAssertEqual(kind(429, "").0, .transient)
        XCTAssertEqual(kind(500, "InternalError").0, .transient)
        XCTAssertEqual(kind(400, "RequestTimeout").0, .transient)
        XCTAssertEqual(kind(400, "BadDigest").0, .transient)
        XCTAssertEqual(kind(403, "AccessDenied").0, .permanent)
        XCTAssertEqual(kind(400, "InvalidArgument").0, .permanent)
        XCTAssertTrue(kind(403, "SignatureDoesNotMatch").1.contains("wrong credentials"))
        XCTAssertTrue(kind(403, "InvalidAccessKeyId").1.contains("wrong credentials"))
        XCTAssertTrue(kind(403, "RequestTimeTooSkewed").1.contains("clock skew"))
        XCTAssertTrue(kind(403, "AccessDenied").1.contains("access denied"))
        XCTAssertTrue(kind(400, "AuthorizationHeaderMalformed").1.contains("--region"))
        let m = kind(400, "InvalidArgument").1
        // The server's text is cut to its first line (an echo of the request stops there).
        XCTAssertEqual(m, "s3://bkt/pre: PUT k: HTTP 400 InvalidArgument: msg with *** and ***")
    }

    func testXMLReader() throws {
        let doc = try XMLReader.parse(Array("""
            \u{FEFF}<?xml version="1.0" encoding="UTF-8"?>
            <!-- comment --><ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">
              <Name>b</Name><IsTruncated>true</IsTruncated>
              <Contents><Key>a &amp; b &lt;c&gt; &quot;d&quot; &apos;e&apos; &#233;&#x65E5;</Key><Size>12</Size></Contents>
              <Contents><Key><![CDATA[x<y]]></Key><Size>3</Size></Contents>
              <Empty/><s3:Prefixed attr="a>b">v</s3:Prefixed>
            </ListBucketResult>
            """.utf8))
        XCTAssertEqual(doc.name, "ListBucketResult")
        XCTAssertEqual(doc["IsTruncated"], "true")
        XCTAssertEqual(doc.all("Contents").map { $0["Key"] }, ["a & b <c> \"d\" 'e' é日", "x<y"])
        XCTAssertEqual(doc["Prefixed"], "v")
        XCTAssertEqual(doc["Empty"], "")
        for bad in ["<a><b></a>", "<a>", "<a>&bogus;</a>", "<!DOCTYPE x><a/>", "<a/><b/>", "text<a/>", ""] {
            XCTAssertThrowsError(try XMLReader.parse(Array(bad.utf8)), bad)
        }
        XCTAssertEqual(XMLReader.escape("a&<>\"'\r"), "a&amp;&lt;&gt;&quot;&apos;&#13;")
        XCTAssertFalse(XMLReader.canRepresent("a\u{1}"))
        XCTAssertTrue(XMLReader.canRepresent("a b\tü"))
        XCTAssertEqual(try S3Store.formDecode("a+b%2Bc%20d/%C3%BC"), "a b+c d/ü")
        XCTAssertEqual(Base64.encode(Array("any carnal pleas".utf8)), "YW55IGNhcm5hbCBwbGVhcw==")
        XCTAssertEqual(Base64.encode(Array("any carnal pleasu".utf8)), "YW55IGNhcm5hbCBwbGVhc3U=")
        XCTAssertEqual(Base64.encode(Array("any carnal pleasur".utf8)), "YW55IGNhcm5hbCBwbGVhc3Vy")
        XCTAssertEqual(Base64.encode([]), "")
    }
}
