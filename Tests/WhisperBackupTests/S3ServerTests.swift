import Foundation
import XCTest
@testable import WhisperBackup

/// The Store contract (StoreConformanceTests) run against the real S3 servers whose variables
/// are set: Swift's s3api (WSP_TEST_S3_ENDPOINT with AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY)
/// and Ceph radosgw (WSP_TEST_RGW_*), as scripts/test.sh and CI export them.
final class S3ServerTests: XCTestCase {
    struct Server {
        var name: String
        var endpoint: String
        var key: String
        var secret: String
        var region: String
    }

    static func servers() -> [Server] {
        let env = ProcessInfo.processInfo.environment
        var out: [Server] = []
        if let e = env["WSP_TEST_S3_ENDPOINT"], let k = env["AWS_ACCESS_KEY_ID"], let s = env["AWS_SECRET_ACCESS_KEY"] {
            out.append(Server(name: "swift-s3api", endpoint: e, key: k, secret: s, region: env["AWS_REGION"] ?? "us-east-1"))
        }
        if let e = env["WSP_TEST_RGW_ENDPOINT"], let k = env["WSP_TEST_RGW_ACCESS_KEY_ID"], let s = env["WSP_TEST_RGW_SECRET_ACCESS_KEY"] {
            out.append(Server(name: "radosgw", endpoint: e, key: k, secret: s, region: env["WSP_TEST_RGW_REGION"] ?? "us-east-1"))
        }
        return out
    }

    /// Runs `body` with the process environment pointing the s3:// scheme at `server` and
    /// the conformance suite at a fresh bucket there.
    func with(_ server: Server, _ body: () throws -> Void) rethrows {
        let names = ["AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_REGION", "WSP_TEST_STORE_URLS"]
        let saved = names.map { getenv($0).map { String(cString: $0) } }
        defer {
            for (n, v) in zip(names, saved) {
                if let v { setenv(n, v, 1) } else { unsetenv(n) }
            }
        }
        let bucket = "wsp-conf-\(UInt32.random(in: 0...UInt32.max))"
        for (n, v) in zip(names, [server.endpoint, server.key, server.secret, server.region, "s3://\(bucket)/p"]) {
            setenv(n, v, 1)
        }
        try body()
    }

    func testConformanceOnRealServers() throws {
        let servers = S3ServerTests.servers()
        if servers.isEmpty { throw XCTSkip("no S3 test server: set WSP_TEST_S3_ENDPOINT or WSP_TEST_RGW_ENDPOINT (scripts/servers)") }
        let suite = StoreConformanceTests(name: "StoreConformanceTests", testClosure: { _ in })
        for server in servers {
            try with(server) {
                XCTAssertEqual(try suite.stores().count, 2, server.name)
                try suite.testPutGetHeadListDelete()
                try suite.testPutFromFile()
            }
        }
    }
}
