import Foundation
import XCTest
@testable import WhisperBackup

/// Responses recorded from a real Keystone 30.0.0 (PyPI `keystone`, SQLite, fernet tokens)
/// started by scripts/servers/keystone.sh: a password token scoped by project name whose
/// catalog has object-store endpoints in RegionOne and RegionTwo, the same scoped by ids,
/// an unscoped token (no catalog), and the 401 for a wrong password.
enum KeystoneFixtures {
    static let dir = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures")

    static func bytes(_ name: String) throws -> [UInt8] {
        Array(try Data(contentsOf: dir.appendingPathComponent(name)))
    }

    static let regionOne = "http://127.0.0.1:18081/v1/AUTH_4133149500f44b3381f2d5dacaeb7793"
    static let regionTwo = "http://127.0.0.1:9/v1/AUTH_4133149500f44b3381f2d5dacaeb7793"
}

final class KeystoneCredentialsTests: XCTestCase {
    func creds(_ env: [String: String]) throws -> KeystoneCredentials {
        try KeystoneCredentials(env: { env[$0] }, location: "swift://c")
    }

    let base = [
        "OS_AUTH_URL": "https://keystone.example:5000/v3",
        "OS_USERNAME": "backup",
        "OS_PASSWORD": "p\"w\\d",
        "OS_PROJECT_NAME": "graphite",
        "OS_USER_DOMAIN_NAME": "Users",
        "OS_PROJECT_DOMAIN_NAME": "Projects",
    ]

    func testPasswordRequestBodyByNames() throws {
        let c = try creds(base)
        XCTAssertEqual(try c.tokenURL(), "https://keystone.example:5000/v3/auth/tokens")
        let body = String(decoding: c.tokenRequestBody(), as: UTF8.self)
        XCTAssertEqual(body, #"{"auth":{"identity":{"methods":["password"],"password":{"user":{"name":"backup","domain":{"name":"Users"},"password":"p\"w\\d"}}},"scope":{"project":{"name":"graphite","domain":{"name":"Projects"}}}}}"#)
        // The body is JSON another reader accepts, with the password intact.
        let obj = try JSONSerialization.jsonObject(with: Data(c.tokenRequestBody())) as! [String: Any]
        let auth = obj["auth"] as! [String: Any]
        let user = ((auth["identity"] as! [String: Any])["password"] as! [String: Any])["user"] as! [String: Any]
        XCTAssertEqual(user["password"] as? String, "p\"w\\d")
    }

    func testPasswordRequestBodyByIdsAndDefaultDomain() throws {
        let c = try creds(["OS_AUTH_URL": "http://k:5000", "OS_USER_ID": "u1", "OS_PASSWORD": "x", "OS_PROJECT_ID": "p1"])
        XCTAssertEqual(try c.tokenURL(), "http://k:5000/v3/auth/tokens")
        XCTAssertEqual(String(decoding: c.tokenRequestBody(), as: UTF8.self),
                       #"{"auth":{"identity":{"methods":["password"],"password":{"user":{"id":"u1","password":"x"}}},"scope":{"project":{"id":"p1"}}}}"#)
        let d = try creds(["OS_AUTH_URL": "http://k:5000/v3/", "OS_USERNAME": "u", "OS_PASSWORD": "x", "OS_PROJECT_NAME": "p"])
        XCTAssertEqual(try d.tokenURL(), "http://k:5000/v3/auth/tokens")
        XCTAssertEqual(String(decoding: d.tokenRequestBody(), as: UTF8.self),
                       #"{"auth":{"identity":{"methods":["password"],"password":{"user":{"name":"u","domain":{"id":"default"},"password":"x"}}},"scope":{"project":{"name":"p","domain":{"id":"default"}}}}}"#)
    }

    func testApplicationCredentialBody() throws {
        let c = try creds(["OS_AUTH_URL": "http://k/identity/v3", "OS_AUTH_TYPE": "v3applicationcredential",
                           "OS_APPLICATION_CREDENTIAL_ID": "ac1", "OS_APPLICATION_CREDENTIAL_SECRET": "s"])
        XCTAssertEqual(try c.tokenURL(), "http://k/identity/v3/auth/tokens")
        XCTAssertEqual(String(decoding: c.tokenRequestBody(), as: UTF8.self),
                       #"{"auth":{"identity":{"methods":["application_credential"],"application_credential":{"id":"ac1","secret":"s"}}}}"#)
    }

    func testConfigurationErrorsNameTheVariable() {
        func message(_ env: [String: String]) -> String {
            do { _ = try creds(env); return "" } catch { return "\(error)" }
        }
        var e = base; e["OS_PASSWORD"] = nil
        XCTAssertTrue(message(e).contains("OS_PASSWORD"))
        e = base; e["OS_USERNAME"] = nil
        XCTAssertTrue(message(e).contains("OS_USERNAME"))
        e = base; e["OS_PROJECT_NAME"] = nil
        XCTAssertTrue(message(e).contains("OS_PROJECT_NAME or OS_PROJECT_ID"))
        e = base; e["OS_INTERFACE"] = "private"
        XCTAssertTrue(message(e).contains("OS_INTERFACE"))
        e = base; e["OS_AUTH_TYPE"] = "token"
        XCTAssertTrue(message(e).contains("OS_AUTH_TYPE"))
        e = base; e["OS_AUTH_URL"] = "http://k:5000/v2.0"
        XCTAssertThrowsError(try creds(e).tokenURL()) { XCTAssertTrue("\($0)".contains("v2.0")) }
        // The password is never part of a message.
        for m in [message(["OS_AUTH_URL": "x", "OS_PASSWORD": "hunter2"])] { XCTAssertFalse(m.contains("hunter2")) }
    }

    func testInterfaceAliases() throws {
        var e = base
        e["OS_INTERFACE"] = "internalURL"
        XCTAssertEqual(try creds(e).interface, "internal")
        e["OS_INTERFACE"] = nil
        e["OS_ENDPOINT_TYPE"] = "adminURL"
        XCTAssertEqual(try creds(e).interface, "admin")
        XCTAssertEqual(try creds(base).interface, "public")
    }

    // MARK: Recorded responses

    func testRecordedTokenWithRegion() throws {
        var e = base
        e["OS_REGION_NAME"] = "RegionOne"
        let t = try creds(e).readToken(subjectToken: "gAAAA-token", body: try KeystoneFixtures.bytes("keystone-v3-token-password.json"))
        XCTAssertEqual(t.token.value, "gAAAA-token")
        XCTAssertEqual(t.storageURL, KeystoneFixtures.regionOne)
        // expires_at - issued_at of the recorded token: Keystone's default hour.
        XCTAssertEqual(t.lifetime, 3600)
        e["OS_REGION_NAME"] = "RegionTwo"
        e["OS_INTERFACE"] = "internal"
        XCTAssertEqual(try creds(e).readToken(subjectToken: "t", body: try KeystoneFixtures.bytes("keystone-v3-token-password.json")).storageURL,
                       KeystoneFixtures.regionTwo)
        let byID = try creds(e).readToken(subjectToken: "t", body: try KeystoneFixtures.bytes("keystone-v3-token-project-id.json"))
        XCTAssertTrue(byID.storageURL.hasPrefix("http://127.0.0.1:9/v1/AUTH_"))
    }

    func testRecordedTokenNeedsRegionWhenSeveral() throws {
        XCTAssertThrowsError(try creds(base).readToken(subjectToken: "t", body: try KeystoneFixtures.bytes("keystone-v3-token-password.json"))) {
            XCTAssertEqual("\($0)", "several object-store endpoints for interface public (regions RegionOne, RegionTwo): set OS_REGION_NAME")
        }
        var e = base
        e["OS_REGION_NAME"] = "RegionThree"
        XCTAssertThrowsError(try creds(e).readToken(subjectToken: "t", body: try KeystoneFixtures.bytes("keystone-v3-token-password.json"))) {
            XCTAssertTrue("\($0)".hasPrefix("no object-store endpoint for interface public in region RegionThree (the catalog offers RegionOne/public"), "\($0)")
        }
    }

    func testRecordedUnscopedTokenAndMissingHeader() throws {
        XCTAssertThrowsError(try creds(base).readToken(subjectToken: "t", body: try KeystoneFixtures.bytes("keystone-v3-token-unscoped.json"))) {
            XCTAssertTrue("\($0)".contains("no service catalog"))
        }
        // With OS_STORAGE_URL the catalog is not needed.
        let t = try creds(base).readToken(subjectToken: "t", body: try KeystoneFixtures.bytes("keystone-v3-token-unscoped.json"), storageURL: "http://s/v1/AUTH_x")
        XCTAssertEqual(t.storageURL, "http://s/v1/AUTH_x")
        XCTAssertThrowsError(try creds(base).readToken(subjectToken: nil, body: try KeystoneFixtures.bytes("keystone-v3-token-password.json"))) {
            XCTAssertTrue("\($0)".contains("X-Subject-Token"))
        }
    }

    func testCatalogWithoutObjectStore() throws {
        let doc = try JSON.parse(try KeystoneFixtures.bytes("keystone-v3-token-password.json"))
        let identityOnly = doc["token"]!["catalog"]!.array!.filter { $0["type"]?.string != "object-store" }
        XCTAssertThrowsError(try KeystoneCredentials.objectStoreURL(catalog: identityOnly, region: nil, interface: "public")) {
            XCTAssertEqual("\($0)", "the Keystone catalog has no object-store service (it has: identity); set OS_STORAGE_URL")
        }
    }
}
