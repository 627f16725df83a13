import XCTest
@testable import WhisperBackup

final class S3ConfigTests: XCTestCase {
    func config(_ url: String, env: [String: String], files: [String: String] = [:],
                _ adjust: (inout StoreSettings) -> Void = { _ in }) throws -> S3Config {
        var settings = StoreSettings()
        adjust(&settings)
        return try S3Config(url: StoreURL(url), settings: settings, environment: { env[$0] }, readFile: { files[$0] })
    }

    func message(_ body: () throws -> Any) -> String {
        do {
            _ = try body()
            return "(no error)"
        } catch {
            return "\(error)"
        }
    }

    let keys = ["AWS_ACCESS_KEY_ID": "AKIDENV", "AWS_SECRET_ACCESS_KEY": "envsecret", "HOME": "/home/op"]

    func testEnvironmentOnAWS() throws {
        var env = keys
        env["AWS_REGION"] = "eu-west-1"
        env["AWS_SESSION_TOKEN"] = "tok"
        let c = try config("s3://graphite-backups/node1/", env: env)
        XCTAssertEqual(c.bucket, "graphite-backups")
        XCTAssertEqual(c.prefix, "node1/")
        XCTAssertEqual(c.region, "eu-west-1")
        XCTAssertEqual(c.endpoint, .init(scheme: "https", host: "s3.eu-west-1.amazonaws.com", port: nil))
        XCTAssertTrue(c.isAWS)
        XCTAssertFalse(c.pathStyle, "virtual-hosted on AWS")
        XCTAssertEqual(c.credentials.accessKeyID, "AKIDENV")
        XCTAssertEqual(c.credentials.sessionToken, "tok")
        XCTAssertFalse(c.insecure)
        // A bucket with dots cannot be a TLS host name: path-style.
        XCTAssertTrue(try config("s3://graphite.backups/x", env: env).pathStyle)
        XCTAssertEqual(try config("s3://b-1/x", env: keys).region, "us-east-1")
        var d = keys
        d["AWS_DEFAULT_REGION"] = "ap-south-1"
        XCTAssertEqual(try config("s3://b-1/x", env: d).region, "ap-south-1")
    }

    func testEndpointAndAddressing() throws {
        var env = keys
        env["AWS_ENDPOINT_URL"] = "http://127.0.0.1:8080/"
        let c = try config("s3://bkt/p", env: env)
        XCTAssertEqual(c.endpoint, .init(scheme: "http", host: "127.0.0.1", port: 8080))
        XCTAssertEqual(c.endpoint.authority, "127.0.0.1:8080")
        XCTAssertTrue(c.pathStyle, "path-style with a custom endpoint")
        XCTAssertFalse(c.isAWS)
        env["AWS_ENDPOINT_URL_S3"] = "https://storage.googleapis.com"
        XCTAssertEqual(try config("s3://bkt/p", env: env).endpoint.host, "storage.googleapis.com")
        let flags = try config("s3://bkt/p", env: env) {
            $0.endpoint = "https://minio.example:9000"
            $0.pathStyle = false
            $0.region = "auto"
            $0.insecure = true
        }
        XCTAssertEqual(flags.endpoint, .init(scheme: "https", host: "minio.example", port: 9000))
        XCTAssertFalse(flags.pathStyle)
        XCTAssertEqual(flags.region, "auto")
        XCTAssertTrue(flags.insecure)
        XCTAssertTrue(flags.httpOptions.insecure)
        XCTAssertEqual(try config("s3://bkt/p", env: keys) { $0.endpoint = "https://h:443" }.endpoint.authority, "h")
        XCTAssertTrue(message { try self.config("s3://bkt/p", env: keys) { $0.endpoint = "ftp://h" } }.contains("must start with http"))
        XCTAssertTrue(message { try self.config("s3://bkt/p", env: keys) { $0.endpoint = "https://u:p@h" } }.contains("no path or credentials"))
        XCTAssertTrue(message { try self.config("s3://bkt/p", env: keys) { $0.endpoint = "https://h:99999" } }.contains("bad port"))
        XCTAssertTrue(message { try self.config("s3://Bad_Bucket/p", env: keys) { $0.pathStyle = false } }.contains("--path-style"))
        env["AWS_CA_BUNDLE"] = "/etc/ssl/certs/ca-certificates.crt"
        XCTAssertEqual(try config("s3://bkt/p", env: env).httpOptions.caBundle, "/etc/ssl/certs/ca-certificates.crt")
    }

    func testCredentialAndConfigFilesExpandTilde() throws {
        // As botocore: `~/x` in AWS_SHARED_CREDENTIALS_FILE and AWS_CONFIG_FILE is under HOME.
        let files = ["/home/op/keys/creds": "[default]\naws_access_key_id = AKIDTILDE\naws_secret_access_key = s\n",
                     "/home/op/keys/config": "[default]\nregion = ap-south-1\n"]
        let env = ["HOME": "/home/op", "AWS_SHARED_CREDENTIALS_FILE": "~/keys/creds", "AWS_CONFIG_FILE": "~/keys/config"]
        let c = try config("s3://bkt/x", env: env, files: files)
        XCTAssertEqual(c.credentials.accessKeyID, "AKIDTILDE")
        XCTAssertEqual(c.region, "ap-south-1")
        // Only a leading `~/` is HOME: `a~/b` is a path like any other.
        XCTAssertTrue(message { try self.config("s3://bkt/x", env: ["HOME": "/home/op", "AWS_SHARED_CREDENTIALS_FILE": "keys~/creds"],
                                                files: files) }.contains("keys~/creds"))
    }

    func testProfiles() throws {
        let files = [
            "/home/op/.aws/credentials": """
                [default]
                aws_access_key_id = AKIDDEFAULT
                aws_secret_access_key = defaultsecret

                # a comment
                [backup]
                aws_access_key_id=AKIDBACKUP
                aws_secret_access_key = backup/secret+key
                aws_session_token = backuptoken
                """,
            "/home/op/.aws/config": """
                [default]
                region = us-west-2

                [profile backup]
                region = eu-central-1
                s3 =
                    addressing_style = path
                    endpoint_url = https://rgw.example.net
                ca_bundle = /etc/rgw-ca.pem

                [profile cfgonly]
                aws_access_key_id = AKIDCFG
                aws_secret_access_key = cfgsecret
                endpoint_url = http://10.0.0.5:7480
                """,
        ]
        let home = ["HOME": "/home/op"]
        let d = try config("s3://bkt/p", env: home, files: files)
        XCTAssertEqual(d.credentials.accessKeyID, "AKIDDEFAULT")
        XCTAssertEqual(d.region, "us-west-2")
        XCTAssertTrue(d.isAWS)

        var env = home
        env["AWS_PROFILE"] = "backup"
        let b = try config("s3://bkt/p", env: env, files: files)
        XCTAssertEqual(b.credentials.accessKeyID, "AKIDBACKUP")
        XCTAssertEqual(b.credentials.secretAccessKey, "backup/secret+key")
        XCTAssertEqual(b.credentials.sessionToken, "backuptoken")
        XCTAssertEqual(b.region, "eu-central-1")
        XCTAssertEqual(b.endpoint.host, "rgw.example.net")
        XCTAssertTrue(b.pathStyle)
        XCTAssertEqual(b.caBundle, "/etc/rgw-ca.pem")

        env["AWS_PROFILE"] = "cfgonly"
        let c = try config("s3://bkt/p", env: env, files: files)
        XCTAssertEqual(c.credentials.accessKeyID, "AKIDCFG")
        XCTAssertEqual(c.endpoint, .init(scheme: "http", host: "10.0.0.5", port: 7480))

        // The environment's keys win over the profile's; the profile still gives the region.
        var both = keys
        both["AWS_PROFILE"] = "backup"
        let e = try config("s3://bkt/p", env: both, files: files)
        XCTAssertEqual(e.credentials.accessKeyID, "AKIDENV")
        XCTAssertNil(e.credentials.sessionToken)
        XCTAssertEqual(e.region, "eu-central-1")

        // Other file locations.
        let moved = try config("s3://bkt/p", env: ["AWS_SHARED_CREDENTIALS_FILE": "/etc/wsp/creds", "HOME": "/nowhere"],
                               files: ["/etc/wsp/creds": "[default]\naws_access_key_id = A1\naws_secret_access_key = S1\n"])
        XCTAssertEqual(moved.credentials.accessKeyID, "A1")
    }

    func testConfigurationErrorsNameTheFixAndNoSecret() {
        let none = message { try self.config("s3://bkt/p", env: ["HOME": "/home/op"]) }
        XCTAssertTrue(none.contains("no S3 credentials"), none)
        XCTAssertTrue(none.contains("AWS_ACCESS_KEY_ID"), none)
        let half = message { try self.config("s3://bkt/p", env: ["AWS_ACCESS_KEY_ID": "AKID", "HOME": "/h"]) }
        XCTAssertTrue(half.contains("AWS_SECRET_ACCESS_KEY is not"), half)
        let half2 = message { try self.config("s3://bkt/p", env: ["AWS_SECRET_ACCESS_KEY": "verysecret", "HOME": "/h"]) }
        XCTAssertFalse(half2.contains("verysecret"), half2)
        let missing = message { try self.config("s3://bkt/p", env: ["AWS_PROFILE": "nope", "HOME": "/h"]) }
        XCTAssertTrue(missing.contains("profile nope"), missing)
        XCTAssertTrue(message { try self.config("s3:///p", env: self.keys) }.contains("no bucket"))
        XCTAssertTrue(message { try self.config("s3://a/p", env: self.keys) }.contains("not a valid bucket name"))
        XCTAssertTrue(message { try StoreURL("s3://AKID:secret@bkt/p") }.contains("credentials do not belong in the URL"))
        XCTAssertFalse(message { try StoreURL("s3://AKID:secret@bkt/p") }.contains("secret"))
    }

    func testRegistryOpensS3() {
        // The s3 scheme is registered; a server that cannot be reached through the retries is a
        // transient store failure (the run fails, exit 1), not a configuration error.
        XCTAssertNotNil(StoreRegistry.factories["s3"])
        // Restore what was there: the conformance suite may run later in this process with the
        // test server's credentials.
        let names = ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"]
        let saved: [(String, String?)] = names.map { n in (n, getenv(n).map { String(cString: $0) }) }
        defer { for (n, v) in saved { if let v { setenv(n, v, 1) } else { unsetenv(n) } } }
        setenv("AWS_ACCESS_KEY_ID", "AKIDREG", 1)
        setenv("AWS_SECRET_ACCESS_KEY", "regsecret", 1)
        var s = StoreSettings()
        s.endpoint = "http://127.0.0.1:9"
        s.retries = 0
        XCTAssertThrowsError(try StoreRegistry.open("s3://bkt/p", settings: s)) { e in
            XCTAssertEqual((e as? StoreError)?.kind, .transient, "\(e)")
            XCTAssertTrue("\(e)".hasPrefix("s3://bkt/p: list: "), "\(e)")
            XCTAssertFalse("\(e)".contains("regsecret"))
        }
    }
}
