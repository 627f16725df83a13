import Foundation
import XCTest
@testable import WhisperBackup

/// An in-memory Swift cluster behind `SwiftStore`'s transport: v1 auth, Keystone v3 (from a
/// recorded response), `/info`, containers, objects with MD5 ETags, JSON listings with
/// prefix/marker/limit, single and bulk deletes, and tokens that can be revoked. It records
/// every request, so tests can count and inspect them.
final class FakeSwift {
    var objects: [String: [UInt8]] = [:]  // "container/key"
    var containers: Set<String> = []
    var validTokens: Set<String> = []
    var tokensIssued = 0
    /// X-Auth-Token-Expires of v1 auth answers (seconds).
    var tokenLife = "86400"
    var bulk = true
    var listingLimit = 10000
    /// Raw `[name, status]` errors to add to the next bulk delete result.
    var bulkErrors: [[String]] = []
    /// The next PUT's body arrives changed (as if corrupted in transit).
    var corruptNextPut = false
    var failNext: [Int] = []
    var log: [(method: String, path: String, query: String)] = []
    let account = "http://swift.test:8080/v1/AUTH_test"
    let user = "test:tester", key = "testing"

    func perform(_ r: HTTPRequest) throws -> HTTPResponse {
        let afterHost = r.url.firstRange(of: "://").map { r.url[$0.upperBound...] }!
        let slash = afterHost.firstIndex(of: "/") ?? afterHost.endIndex
        let target = afterHost[slash...]
        let path = String(target.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false)[0])
        let query = target.contains("?") ? String(target.split(separator: "?", maxSplits: 1)[1]) : ""
        log.append((r.method, path, query))
        func header(_ n: String) -> String? { r.headers.first { $0.name.lowercased() == n.lowercased() }?.value }
        func resp(_ status: Int, _ headers: [(String, String)] = [], _ body: [UInt8] = []) -> HTTPResponse {
            var body = body
            var md5: [UInt8]? = nil
            if let f = r.responseFile, (200..<300).contains(status) {
                _ = FileManager.default.createFile(atPath: f, contents: Data(body))
                md5 = Digest.hash(.md5, body)
                body = []
            }
            return HTTPResponse(status: status, headers: headers.map { (name: $0.0.lowercased(), value: $0.1) },
                                body: body, bodyBytes: Int64(body.count), bodyMD5: md5)
        }

        if path == "/auth/v1.0" {
            guard header("X-Auth-User") == user, header("X-Auth-Key") == key else { return resp(401) }
            tokensIssued += 1
            let t = "AUTH_tk\(tokensIssued)"
            validTokens.insert(t)
            return resp(200, [("X-Auth-Token", t), ("X-Storage-Url", account), ("X-Auth-Token-Expires", tokenLife)])
        }
        if path == "/v3/auth/tokens" {
            let body = try JSON.parse(bodyBytes(r))
            guard body["auth"]?["identity"]?["password"]?["user"]?["password"]?.string == "wsp-password" else {
                return resp(401, [], try KeystoneFixtures.bytes("keystone-v3-401.json"))
            }
            tokensIssued += 1
            let t = "gAAAA\(tokensIssued)"
            validTokens.insert(t)
            return resp(201, [("X-Subject-Token", t)], try KeystoneFixtures.bytes("keystone-v3-token-password.json"))
        }
        if path == "/info" {
            var doc = #"{"swift": {"version": "2.38.3", "container_listing_limit": \#(listingLimit)}"#
            if bulk { doc += #", "bulk_delete": {"max_deletes_per_request": 10000, "max_failed_deletes": 1000}"# }
            return resp(200, [], Array((doc + "}").utf8))
        }
        if let s = failNext.first { failNext.removeFirst(); return resp(s, [], Array("<html><h1>Oops</h1><p>failed</p></html>".utf8)) }
        guard let tok = header("X-Auth-Token"), validTokens.contains(tok) else { return resp(401) }
        guard path.hasPrefix("/v1/AUTH_") else { return resp(404) }
        let parts = path.split(separator: "/", maxSplits: 3, omittingEmptySubsequences: false)  // "", v1, AUTH_x, rest
        if parts.count < 4 {
            guard r.method == "POST", query == "bulk-delete" else { return resp(405) }
            return bulkDelete(String(decoding: try bodyBytes(r), as: UTF8.self), resp)
        }
        let rest = String(parts[3])
        let container: String, key: String?
        if let s = rest.firstIndex(of: "/") {
            container = SwiftStore.decode(String(rest[..<s]))
            key = SwiftStore.decode(String(rest[rest.index(after: s)...]))
        } else {
            container = SwiftStore.decode(rest)
            key = nil
        }
        guard let key else {
            switch r.method {
            case "HEAD": return resp(containers.contains(container) ? 204 : 404)
            case "PUT": containers.insert(container); return resp(201)
            case "GET":
                guard containers.contains(container) else { return resp(404) }
                return listing(container, query, resp)
            default: return resp(405)
            }
        }
        let full = container + "/" + key
        switch r.method {
        case "PUT":
            guard containers.contains(container) else { return resp(404) }
            var data = try bodyBytes(r)
            if corruptNextPut { corruptNextPut = false; data[0] ^= 1 }
            let md5 = Hex.encode(Digest.hash(.md5, data))
            if let e = header("ETag"), e != md5 { return resp(422) }
            objects[full] = data
            return resp(201, [("Etag", md5)])
        case "GET", "HEAD":
            guard let data = objects[full] else { return resp(404) }
            let etag = Hex.encode(Digest.hash(.md5, data))
            return resp(200, [("Etag", etag), ("Content-Length", String(data.count))], r.method == "GET" ? data : [])
        case "DELETE":
            return resp(objects.removeValue(forKey: full) == nil ? 404 : 204)
        default:
            return resp(405)
        }
    }

    func bodyBytes(_ r: HTTPRequest) throws -> [UInt8] {
        switch r.body {
        case .empty: return []
        case .bytes(let b): return b
        case .file(let p): return Array(try Data(contentsOf: URL(fileURLWithPath: p)))
        }
    }

    func listing(_ container: String, _ query: String, _ resp: (Int, [(String, String)], [UInt8]) -> HTTPResponse) -> HTTPResponse {
        var q: [String: String] = [:]
        for item in query.split(separator: "&") {
            let kv = item.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            q[String(kv[0])] = kv.count > 1 ? SwiftStore.decode(String(kv[1])) : ""
        }
        let limit = min(Int(q["limit"] ?? "") ?? listingLimit, listingLimit)
        let prefix = q["prefix"] ?? "", marker = q["marker"] ?? ""
        let names = objects.keys.filter { $0.hasPrefix(container + "/") }.map { String($0.dropFirst(container.count + 1)) }
            .filter { $0.hasPrefix(prefix) && marker.utf8.lexicographicallyPrecedes($0.utf8) }
            .sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) }
            .prefix(limit)
        let items = names.map { n in
            JSON.object([("name", .string(n)), ("bytes", .number(String(objects[container + "/" + n]!.count)))])
        }
        return resp(200, [("Content-Type", "application/json")], Array(JSON.array(Array(items)).text.utf8))
    }

    func bulkDelete(_ body: String, _ resp: (Int, [(String, String)], [UInt8]) -> HTTPResponse) -> HTTPResponse {
        var deleted = 0, notFound = 0
        let errors: [JSON] = bulkErrors.map { .array($0.map { .string($0) }) }
        let failing = Set(bulkErrors.map { $0[0] })
        bulkErrors = []
        for line in body.split(separator: "\n") where !failing.contains(String(line)) {
            let p = SwiftStore.decode(String(line.dropFirst()))
            if objects.removeValue(forKey: p) != nil { deleted += 1 } else { notFound += 1 }
        }
        let doc = JSON.object([("Response Status", .string(errors.isEmpty ? "200 OK" : "400 Bad Request")),
                               ("Response Body", .string("")), ("Number Deleted", .number(String(deleted))),
                               ("Number Not Found", .number(String(notFound))), ("Errors", .array(errors))])
        return resp(200, [("Content-Type", "application/json")], Array(doc.text.utf8))
    }

    func count(_ method: String, _ pathPrefix: String = "") -> Int {
        log.filter { $0.method == method && $0.path.hasPrefix(pathPrefix) }.count
    }
}

final class SwiftStoreTests: XCTestCase {
    var fake = FakeSwift()
    var tmp = ""

    override func setUpWithError() throws {
        fake = FakeSwift()
        tmp = NSTemporaryDirectory() + "swift-tests-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        try FileManager.default.createDirectory(atPath: tmp, withIntermediateDirectories: true)
    }

    override func tearDown() { try? FileManager.default.removeItem(atPath: tmp) }

    /// The container's SwiftStore, prepared through the registry's wrappers (`dry`: the
    /// dry-run wrapper it was prepared through).
    func store(_ env: [String: String]? = nil, create: Bool = false, dryRun: Bool = false, container: String = "backups",
               dry: ((Store) -> Void)? = nil) throws -> SwiftStore {
        var s = StoreSettings()
        s.createMissing = create
        s.dryRun = dryRun
        s.retries = 0
        let e = env ?? ["ST_AUTH": "http://swift.test:8080/auth/v1.0", "ST_USER": "test:tester", "ST_KEY": "testing"]
        let cfg = try SwiftConfig(url: StoreURL("swift://\(container)/node1/"), settings: s, env: { e[$0] })
        let st = SwiftStore(config: cfg, location: "swift://\(container)/node1/", perform: { [fake] in try fake.perform($0) })
        let wrapped = try StoreRegistry.wrap(st, settings: s)
        dry?(wrapped)
        return st
    }

    func keys(_ st: Store, _ prefix: String = "") throws -> [String] {
        var out: [String] = []
        try st.list(prefix: prefix) { out.append($0.key) }
        return out
    }

    func testMissingContainerIsOneClearErrorUnlessAsked() throws {
        XCTAssertThrowsError(try store()) {
            XCTAssertEqual("\($0)", "swift://backups/node1/: container backups does not exist in http://swift.test:8080/v1/AUTH_test (create it, or pass --create-container)")
            XCTAssertTrue($0 is ConfigError)
        }
        XCTAssertFalse(fake.containers.contains("backups"))
        // A dry run with --create-container creates nothing and lists nothing.
        var dry: Store?
        _ = try store(create: true, dryRun: true) { dry = $0 }
        XCTAssertEqual(try keys(dry!), [])
        XCTAssertFalse(fake.containers.contains("backups"))
        _ = try store(create: true)
        XCTAssertTrue(fake.containers.contains("backups"))
    }

    func testRoundTripOddNamesAndOneToken() throws {
        fake.containers.insert("backups")
        let st = try store()
        let names = ["node1/a b/1", "node1/m+x:y%z/2", "node1/caf\u{e9}.\u{1F600}/3", "node1/q?x#y&z=1/4"]
        for (i, n) in names.enumerated() { try st.put(n, body: .bytes(Array("v\(i)".utf8))) }
        let src = tmp + "/src"
        _ = FileManager.default.createFile(atPath: src, contents: Data("from a file".utf8))
        try st.put("node1/file/5", body: .file(src))
        XCTAssertEqual(try keys(st), (names + ["node1/file/5"]).sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) })
        for (i, n) in names.enumerated() {
            try st.get(n, to: tmp + "/out")
            XCTAssertEqual(try String(contentsOfFile: tmp + "/out", encoding: .utf8), "v\(i)")
            XCTAssertEqual(try st.head(n)?.size, 2)
        }
        XCTAssertNil(try st.head("node1/none"))
        XCTAssertThrowsError(try st.get("node1/none", to: tmp + "/out")) { XCTAssertEqual(($0 as? StoreError)?.kind, .notFound) }
        XCTAssertEqual(fake.tokensIssued, 1, "one token for the whole process")
        XCTAssertEqual(st.authentications, 1)
        // Keys travel percent-encoded ("/" kept), so the server saw exactly these names.
        XCTAssertNotNil(fake.objects["backups/node1/q?x#y&z=1/4"])
        XCTAssertTrue(fake.log.contains { $0.path.hasSuffix("/backups/node1/q%3Fx%23y%26z%3D1/4") })
    }

    func testPutSendsMD5AndCorruptionIsTransient() throws {
        fake.containers.insert("backups")
        let st = try store()
        fake.corruptNextPut = true
        XCTAssertThrowsError(try st.put("node1/x/1", body: .bytes([1, 2, 3]))) {
            XCTAssertEqual(($0 as? StoreError)?.kind, .transient)
            XCTAssertTrue("\($0)".contains("422"), "\($0)")
        }
        XCTAssertNil(fake.objects["backups/node1/x/1"])
        // The retry wrapper turns it into a success on the next attempt.
        fake.corruptNextPut = true
        try RetryStore(st, attempts: 3, firstDelay: 0).put("node1/x/1", body: .bytes([1, 2, 3]))
        XCTAssertEqual(fake.objects["backups/node1/x/1"], [1, 2, 3])
    }

    func testListingPagesByMarker() throws {
        fake.containers.insert("backups")
        fake.listingLimit = 7
        let st = try store()
        for i in 0..<30 { fake.objects["backups/node1/m\(i / 3)/v\(i)"] = [UInt8(i)] }
        fake.objects["backups/other/x"] = [0]
        let all = try keys(st, "node1/")
        XCTAssertEqual(all.count, 30)
        XCTAssertEqual(all, all.sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) })
        // 30 objects in pages of 7: 5 requests (the last short page ends it).
        XCTAssertEqual(fake.log.filter { $0.method == "GET" && $0.query.contains("format=json") }.count, 5)
        XCTAssertTrue(fake.log.last!.query.contains("marker=node1%2Fm9%2Fv27"), fake.log.last!.query)
        XCTAssertEqual(try keys(st, "node1/m1/"), ["node1/m1/v3", "node1/m1/v4", "node1/m1/v5"])
    }

    func testListLimitFromEnvironment() throws {
        fake.containers.insert("backups")
        let st = try store(["ST_AUTH": "http://swift.test:8080/auth/v1.0", "ST_USER": "test:tester", "ST_KEY": "testing", "WSP_SWIFT_LIST_LIMIT": "2"])
        for i in 0..<5 { fake.objects["backups/node1/k\(i)"] = [1] }
        XCTAssertEqual(try keys(st).count, 5)
        XCTAssertEqual(fake.log.filter { $0.query.contains("limit=2") }.count, 3)
    }

    func testReauthenticatesOnceOn401() throws {
        fake.containers.insert("backups")
        let st = try store()
        try st.put("node1/a/1", body: .bytes([1]))
        fake.validTokens.removeAll()  // the token expired or was revoked
        try st.put("node1/a/2", body: .bytes([2]))
        XCTAssertEqual(fake.tokensIssued, 2)
        XCTAssertEqual(try keys(st), ["node1/a/1", "node1/a/2"])
        // A 401 that a new token does not cure is a permanent, clear failure.
        fake.failNext = [401, 401]
        XCTAssertThrowsError(try st.head("node1/a/1")) {
            XCTAssertEqual(($0 as? StoreError)?.kind, .permanent)
            XCTAssertTrue("\($0)".contains("unauthorized (401) even with a new token"), "\($0)")
        }
    }

    func testTokenRenewedBeforeItExpires() throws {
        fake.containers.insert("backups")
        fake.tokenLife = "0"  // already at its end: renewed before the next request, no 401
        let st = try store()
        try st.put("node1/a/1", body: .bytes([1]))
        XCTAssertNotNil(try st.head("node1/a/1"))
        XCTAssertEqual(fake.tokensIssued, 3)
        fake.tokenLife = "3600"
        _ = try st.auth.renew()
        for i in 0..<5 { try st.put("node1/b/\(i)", body: .bytes([1])) }
        XCTAssertEqual(fake.tokensIssued, 4, "a token with time left is reused")
    }

    func testReadyTokenWithoutCredentialsFailsClearlyOn401() throws {
        fake.containers.insert("backups")
        fake.validTokens.insert("ready")
        let st = try store(["OS_AUTH_TOKEN": "ready", "OS_STORAGE_URL": fake.account])
        try st.put("node1/a/1", body: .bytes([1]))
        XCTAssertEqual(fake.tokensIssued, 0)
        fake.validTokens.removeAll()
        XCTAssertThrowsError(try st.put("node1/a/2", body: .bytes([1]))) {
            XCTAssertEqual(($0 as? StoreError)?.kind, .permanent)
            XCTAssertTrue("\($0)".contains("OS_AUTH_TOKEN was rejected"), "\($0)")
            XCTAssertFalse("\($0)".contains("ready"))
        }
    }

    func testWrongCredentials() throws {
        XCTAssertThrowsError(try store(["ST_AUTH": "http://swift.test:8080/auth/v1.0", "ST_USER": "test:tester", "ST_KEY": "wrong"])) {
            XCTAssertTrue($0 is ConfigError, "\($0)")
            XCTAssertEqual("\($0)", "swift://backups/node1/: v1 auth at http://swift.test:8080/auth/v1.0 refused the credentials (401): check ST_USER (test:tester) and ST_KEY")
        }
        XCTAssertThrowsError(try store(keystoneEnv(password: "nope"), container: "ks")) {
            XCTAssertTrue($0 is ConfigError, "\($0)")
            XCTAssertEqual("\($0)", "swift://ks/node1/: Keystone at http://keystone.test:5000/v3/auth/tokens refused the credentials (401 The request you have made requires authentication.): check OS_USERNAME (user wsp-user), OS_PASSWORD, the OS_*_DOMAIN_* and OS_PROJECT_* variables")
            XCTAssertFalse("\($0)".contains("nope"))
        }
    }

    func keystoneEnv(password: String = "wsp-password") -> [String: String] {
        ["OS_AUTH_URL": "http://keystone.test:5000/v3", "OS_USERNAME": "wsp-user", "OS_PASSWORD": password,
         "OS_PROJECT_NAME": "wsp-project", "OS_USER_DOMAIN_NAME": "wsp-domain", "OS_PROJECT_DOMAIN_NAME": "wsp-domain",
         "OS_REGION_NAME": "RegionOne"]
    }

    /// The recorded token's `expires_at` is long past by this machine's clock; its life
    /// (`expires_at - issued_at`) is what counts, so it is reused, not renewed per request.
    func testKeystoneCatalogURLIsUsed() throws {
        fake.containers.insert("ks")
        let st = try store(keystoneEnv(), container: "ks")
        try st.put("node1/a/1", body: .bytes([1]))
        // The recorded catalog's RegionOne endpoint, served by the fake whatever the host.
        XCTAssertTrue(fake.log.contains { $0.method == "PUT" && $0.path == "/v1/AUTH_4133149500f44b3381f2d5dacaeb7793/ks/node1/a/1" })
        XCTAssertEqual(fake.count("POST", "/v3/auth/tokens"), 1)
        fake.validTokens.removeAll()
        XCTAssertNotNil(try st.head("node1/a/1"))
        XCTAssertEqual(fake.count("POST", "/v3/auth/tokens"), 2)
    }

    func testBulkDeleteReadsPerObjectErrors() throws {
        fake.containers.insert("backups")
        let st = try store()
        for i in 0..<4 { fake.objects["backups/node1/k \(i)"] = [1] }
        fake.bulkErrors = [["/backups/node1/k%202", "403 Forbidden"], ["/backups/node1/k%203", "503 Service Unavailable"]]
        let failed = try st.delete(["node1/k 0", "node1/k 1", "node1/k 2", "node1/k 3", "node1/gone"])
        XCTAssertEqual(fake.count("POST"), 1)
        XCTAssertEqual(fake.count("DELETE"), 0)
        XCTAssertEqual(failed.map(\.key), ["node1/k 2", "node1/k 3"])
        XCTAssertEqual(failed.map { ($0.error as? StoreError)?.kind }, [.permanent, .transient])
        XCTAssertEqual(Set(fake.objects.keys), ["backups/node1/k 2", "backups/node1/k 3"])
    }

    func testBulkDeleteReauthenticatesOnPerObject401() throws {
        fake.containers.insert("backups")
        let st = try store()
        for i in 0..<3 { fake.objects["backups/node1/k\(i)"] = [1] }
        // Swift's bulk middleware answers 200 and reports the expired token per object.
        fake.bulkErrors = [["/backups/node1/k0", "401 Unauthorized"], ["/backups/node1/k1", "401 Unauthorized"], ["/backups/node1/k2", "401 Unauthorized"]]
        XCTAssertTrue(try st.delete(["node1/k0", "node1/k1", "node1/k2"]).isEmpty)
        XCTAssertEqual(fake.tokensIssued, 2)
        XCTAssertEqual(fake.count("POST"), 2)
        XCTAssertTrue(fake.objects.isEmpty)
    }

    func testSingleDeletesWithoutBulkAnd404IsSuccess() throws {
        fake.bulk = false
        fake.containers.insert("backups")
        let st = try store()
        fake.objects["backups/node1/a"] = [1]
        fake.objects["backups/node1/b"] = [1]
        XCTAssertTrue(try st.delete(["node1/a", "node1/b", "node1/missing"]).isEmpty)
        XCTAssertEqual(fake.count("DELETE"), 3)
        XCTAssertEqual(fake.count("POST"), 0)
        fake.objects["backups/node1/c"] = [1]
        fake.failNext = [503]
        let failed = try st.delete(["node1/c"])
        XCTAssertEqual(failed.map { ($0.error as? StoreError)?.kind }, [.transient])
        XCTAssertTrue("\(failed[0].error)".contains("503 Oops failed"), "\(failed[0].error)")
    }

    func testStatusKinds() {
        XCTAssertEqual(SwiftStore.kind(ofStatus: 404), .notFound)
        for s in [408, 409, 429, 498, 500, 503] { XCTAssertEqual(SwiftStore.kind(ofStatus: s), .transient, "\(s)") }
        for s in [400, 403, 411, 413] { XCTAssertEqual(SwiftStore.kind(ofStatus: s), .permanent, "\(s)") }
    }

    func testEncodingAndInfoURL() {
        XCTAssertEqual(SwiftStore.encode("a b/c+d:e%f/\u{e9}", keepSlash: true), "a%20b/c%2Bd%3Ae%25f/%C3%A9")
        XCTAssertEqual(SwiftStore.encode("a/b", keepSlash: false), "a%2Fb")
        XCTAssertEqual(SwiftStore.decode("a%20b/c%2Bd%3Ae%25f/%C3%A9"), "a b/c+d:e%f/\u{e9}")
        XCTAssertEqual(SwiftStore.infoURL(storageURL: "http://h:8080/v1/AUTH_test"), "http://h:8080/info")
        XCTAssertEqual(SwiftStore.infoURL(storageURL: "https://h/swift/v1"), "https://h/swift/info")
        XCTAssertEqual(SwiftStore.infoURL(storageURL: "https://h/object/v1/AUTH_x"), "https://h/object/info")
        XCTAssertEqual(SwiftStore.infoURL(storageURL: "https://h/account"), "https://h/info")
    }

    func testListingParserRejectsGarbage() {
        XCTAssertThrowsError(try SwiftStore.parseListing(Array("{}".utf8), location: "l"))
        XCTAssertThrowsError(try SwiftStore.parseListing(Array("[{\"bytes\": 1}]".utf8), location: "l"))
        XCTAssertEqual(try SwiftStore.parseListing(Array("[{\"subdir\": \"a/\"}, {\"name\": \"caf\\u00e9\", \"bytes\": 12345678901}]".utf8), location: "l"),
                       [StoreObject(key: "caf\u{e9}", size: 12345678901)])
        XCTAssertEqual(try SwiftStore.parseListing([], location: "l"), [])
    }
}
