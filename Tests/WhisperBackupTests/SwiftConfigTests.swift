import Foundation
import XCTest
@testable import WhisperBackup

final class SwiftConfigTests: XCTestCase {
    func config(_ url: String, _ env: [String: String], settings: StoreSettings = StoreSettings()) throws -> SwiftConfig {
        try SwiftConfig(url: StoreURL(url), settings: settings, env: { env[$0] })
    }

    func message(_ url: String, _ env: [String: String]) -> String {
        do { _ = try config(url, env); return "" } catch { return "\(error)" }
    }

    let v1 = ["ST_AUTH": "http://127.0.0.1:8080/auth/v1.0", "ST_USER": "test:tester", "ST_KEY": "s3cr3t-key"]

    func testV1AndContainerPrefix() throws {
        let c = try config("swift://backups/node1/", v1)
        XCTAssertEqual(c.container, "backups")
        XCTAssertEqual(c.prefix, "node1/")
        guard case .v1(let url, let user, let key)? = c.credentials else { return XCTFail("not v1") }
        XCTAssertEqual(url, "http://127.0.0.1:8080/auth/v1.0")
        XCTAssertEqual(user, "test:tester")
        XCTAssertEqual(key.value, "s3cr3t-key")
        XCTAssertNil(c.token)
        XCTAssertEqual(try config("swift://backups", v1).prefix, "")
    }

    func testKeystoneAndReadyToken() throws {
        let k = try config("swift://c/p", ["OS_AUTH_URL": "http://k:5000/v3", "OS_USERNAME": "u", "OS_PASSWORD": "pw",
                                          "OS_PROJECT_ID": "p1", "OS_REGION_NAME": "R"])
        guard case .keystone(let kc)? = k.credentials else { return XCTFail("not keystone") }
        XCTAssertEqual(kc.region, "R")
        let t = try config("swift://c", ["OS_AUTH_TOKEN": "tok", "OS_STORAGE_URL": "http://s:8080/v1/AUTH_x/"])
        XCTAssertNil(t.credentials)
        XCTAssertEqual(t.token?.value, "tok")
        XCTAssertEqual(t.storageURL, "http://s:8080/v1/AUTH_x")
        // ST_AUTH wins over OS_AUTH_URL; a ready token is kept alongside credentials.
        var both = v1
        both["OS_AUTH_URL"] = "http://k:5000/v3"
        both["OS_AUTH_TOKEN"] = "tok"
        both["OS_STORAGE_URL"] = "http://s/v1/AUTH_x"
        let b = try config("swift://c", both)
        guard case .v1? = b.credentials else { return XCTFail("ST_AUTH should win") }
        XCTAssertEqual(b.token?.value, "tok")
    }

    func testErrors() {
        XCTAssertTrue(message("swift://c", [:]).contains("no Swift credentials in the environment: set ST_AUTH, ST_USER, ST_KEY"))
        XCTAssertTrue(message("swift:///p", v1).contains("no container"))
        XCTAssertTrue(message("swift://c", ["ST_AUTH": "http://a", "ST_USER": "u"]).contains("ST_KEY is not"))
        XCTAssertTrue(message("swift://c", ["ST_AUTH": "http://a", "ST_KEY": "k"]).contains("ST_USER is not"))
        XCTAssertTrue(message("swift://c", ["ST_AUTH": "ftp://a", "ST_USER": "u", "ST_KEY": "k"]).contains("not an http(s) URL"))
        XCTAssertTrue(message("swift://c", ["OS_AUTH_TOKEN": "t"]).contains("OS_AUTH_TOKEN needs OS_STORAGE_URL"))
        var e = v1
        e["WSP_SWIFT_LIST_LIMIT"] = "0"
        XCTAssertTrue(message("swift://c", e).contains("WSP_SWIFT_LIST_LIMIT"))
        // Credentials in the URL are refused before the environment is read.
        XCTAssertThrowsError(try StoreURL("swift://user:pw@c/p"))
    }

    func testSecretsNeverPrint() throws {
        let c = try config("swift://c/p", v1)
        XCTAssertFalse("\(c)".contains("s3cr3t-key"))
        XCTAssertFalse(String(reflecting: c).contains("s3cr3t-key"))
        let k = try config("swift://c/p", ["OS_AUTH_URL": "http://k/v3", "OS_USERNAME": "u", "OS_PASSWORD": "hunter2", "OS_PROJECT_NAME": "p",
                                          "OS_AUTH_TOKEN": "tok-secret", "OS_STORAGE_URL": "http://s/v1/AUTH_x"])
        XCTAssertFalse("\(k)".contains("hunter2"))
        XCTAssertFalse("\(k)".contains("tok-secret"))
        XCTAssertFalse(String(reflecting: k).contains("hunter2"))
        XCTAssertEqual("\(Secret("x"))", "<secret>")
    }

    func testRegistryKnowsSwift() {
        XCTAssertNotNil(StoreRegistry.factories["swift"])
        // Without credentials, opening fails with a configuration error before any request.
        let env = ProcessInfo.processInfo.environment
        let saved: [(String, String?)] = ["ST_AUTH", "OS_AUTH_URL", "OS_AUTH_TOKEN"].map { ($0, env[$0]) }
        for (n, _) in saved { unsetenv(n) }
        defer { for (n, v) in saved { if let v { setenv(n, v, 1) } } }
        XCTAssertThrowsError(try StoreRegistry.open("swift://c/p", settings: StoreSettings())) {
            XCTAssertTrue($0 is ConfigError, "\($0)")
        }
    }
}
