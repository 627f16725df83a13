import Foundation
import XCTest
@testable import WhisperBackup

final class SigV4Tests: XCTestCase {
    // The examples of "Signature Calculations for the Authorization Header: Transferring
    // Payload in a Single Chunk" (Amazon S3 API reference, AWS Signature Version 4).
    let s3Example = SigV4(credentials: AWSCredentials(accessKeyID: "AKIAIOSFODNN7EXAMPLE",
                                                      secretAccessKey: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"),
                          region: "us-east-1")
    let exampleTime: Int64 = 1369353600  // 20130524T000000Z
    let host = ("Host", "examplebucket.s3.amazonaws.com")

    func signature(_ s: SigV4.Signed) -> String {
        String(s.headers.last!.value.split(separator: "=").last!)
    }

    func testS3ExampleGetObject() {
        let s = s3Example.sign(method: "GET", path: "/test.txt", headers: [host, ("Range", "bytes=0-9")],
                               payloadHash: SigV4.emptyPayloadHash, time: exampleTime)
        XCTAssertEqual(s.canonicalRequest, """
            GET
            /test.txt

            host:examplebucket.s3.amazonaws.com
            range:bytes=0-9
            x-amz-content-sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855
            x-amz-date:20130524T000000Z

            host;range;x-amz-content-sha256;x-amz-date
            e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855
            """)
        XCTAssertEqual(s.stringToSign, """
            AWS4-HMAC-SHA256
            20130524T000000Z
            20130524/us-east-1/s3/aws4_request
            7344ae5b7ee6c3e7e6b0fe0640412a37625d1fbfff95c48bbb2dc43964946972
            """)
        XCTAssertEqual(s.signature, "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41")
        XCTAssertEqual(s.headers.last!.name, "Authorization")
        XCTAssertEqual(s.headers.last!.value, "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41")
    }

    func testS3ExamplePutObject() {
        let body = Array("Welcome to Amazon S3.".utf8)
        let hash = Digest.sha256Hex(body)
        XCTAssertEqual(hash, "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072")
        let s = s3Example.sign(method: "PUT", path: "/test$file.text",
                               headers: [host, ("Date", "Fri, 24 May 2013 00:00:00 GMT"), ("x-amz-storage-class", "REDUCED_REDUNDANCY")],
                               payloadHash: hash, time: exampleTime)
        XCTAssertEqual(s.encodedPath, "/test%24file.text")
        XCTAssertTrue(s.canonicalRequest.contains("\ndate;host;x-amz-content-sha256;x-amz-date;x-amz-storage-class\n"))
        XCTAssertEqual(s.signature, "98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd")
    }

    func testS3ExampleGetLifecycleAndListObjects() {
        let lifecycle = s3Example.sign(method: "GET", path: "/", query: [("lifecycle", "")], headers: [host],
                                       payloadHash: SigV4.emptyPayloadHash, time: exampleTime)
        XCTAssertEqual(lifecycle.encodedQuery, "lifecycle=")
        XCTAssertEqual(lifecycle.signature, "fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543")
        let list = s3Example.sign(method: "GET", path: "/", query: [("prefix", "J"), ("max-keys", "2")], headers: [host],
                                  payloadHash: SigV4.emptyPayloadHash, time: exampleTime)
        XCTAssertEqual(list.encodedQuery, "max-keys=2&prefix=J")
        XCTAssertEqual(list.signature, "34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7")
    }

    /// The signing key example of the SigV4 documentation (IAM, 2012-02-15).
    func testSigningKeyExample() {
        let v = SigV4(credentials: AWSCredentials(accessKeyID: "x", secretAccessKey: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"),
                      region: "us-east-1", service: "iam")
        XCTAssertEqual(Hex.encode(v.signingKey(day: "20120215")), "f4780e2d9f65fa895f9c67b32ce1baf0b0d8a43505a000a1a9e090d414db404d")
    }

    /// Cases of the AWS SigV4 test suite (aws-sig-v4-test-suite: get-vanilla,
    /// get-vanilla-query-order-key-case, post-vanilla), which sign no payload header.
    func testGeneralTestSuite() {
        let v = SigV4(credentials: AWSCredentials(accessKeyID: "AKIDEXAMPLE", secretAccessKey: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"),
                      region: "us-east-1", service: "service")
        let t: Int64 = 1440938160  // 20150830T123600Z
        let h = [("Host", "example.amazonaws.com")]
        let empty = SigV4.emptyPayloadHash
        XCTAssertEqual(v.sign(method: "GET", path: "/", headers: h, payloadHash: empty, time: t).signature,
                       "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31")
        XCTAssertEqual(v.sign(method: "GET", path: "/", query: [("Param2", "value2"), ("Param1", "value1")], headers: h, payloadHash: empty, time: t).signature,
                       "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500")
        XCTAssertEqual(v.sign(method: "POST", path: "/", headers: h, payloadHash: empty, time: t).signature,
                       "5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b")
    }

    func testEncoding() {
        XCTAssertEqual(SigV4.encode("a b+c:d~e%f/g", keepSlash: true), "a%20b%2Bc%3Ad~e%25f/g")
        XCTAssertEqual(SigV4.encode("a/b"), "a%2Fb")
        XCTAssertEqual(SigV4.encode("ünï ሴ😀"), "%C3%BCn%C3%AF%20%E1%88%B4%F0%9F%98%80")
        XCTAssertEqual(SigV4.encode("AZaz09-_.~"), "AZaz09-_.~")
        XCTAssertEqual(SigV4.canonicalQuery([("b", "2"), ("a", "z z"), ("a", "y"), ("delete", "")]), "a=y&a=z%20z&b=2&delete=")
        XCTAssertEqual(SigV4.trimAll("  a   b\t c  "), "a b c")
    }

    func testSessionTokenIsSignedAndSecretsNeverPrinted() {
        let creds = AWSCredentials(accessKeyID: "AKIDTOKENTEST", secretAccessKey: "s3cr3t/secret+key", sessionToken: "tok+en/=")
        let s = SigV4(credentials: creds, region: "eu-west-1").sign(method: "GET", path: "/b/k", headers: [("Host", "h")],
                                                                     payloadHash: SigV4.emptyPayloadHash, time: exampleTime)
        XCTAssertTrue(s.headers.contains { $0.name == "x-amz-security-token" && $0.value == "tok+en/=" })
        XCTAssertTrue(s.canonicalRequest.contains("x-amz-security-token:tok+en/=\n"))
        XCTAssertFalse("\(creds)".contains("s3cr3t"))
        XCTAssertFalse("\(creds)".contains("AKID"))
        XCTAssertEqual(creds.redact("key AKIDTOKENTEST secret s3cr3t/secret+key token tok+en/="), "key *** secret *** token ***")
    }

    /// Random keys, methods, paths, queries and headers: the signatures, canonical requests
    /// and encoded paths must equal botocore's (Tests/integration/sigv4_botocore.py).
    func testMatchesBotocoreOnRandomRequests() throws {
        let repo = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let script = repo.appendingPathComponent("Tests/integration/sigv4_botocore.py").path
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = ["python3", script, "--count", "400", "--seed", "20261127"]
        let out = Pipe()
        p.standardOutput = out
        do { try p.run() } catch { throw XCTSkip("python3 not available: \(error)") }
        let data = out.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        if p.terminationStatus == 77 { throw XCTSkip("botocore is not installed") }
        XCTAssertEqual(p.terminationStatus, 0)
        let cases = try XCTUnwrap(JSONSerialization.jsonObject(with: data) as? [[String: Any]])
        XCTAssertEqual(cases.count, 400)
        var sessions = 0, queries = 0, unicode = 0
        for c in cases {
            let pairs = { (k: String) in (c[k] as! [[String]]).map { (name: $0[0], value: $0[1]) } }
            let creds = AWSCredentials(accessKeyID: c["access_key"] as! String, secretAccessKey: c["secret_key"] as! String,
                                       sessionToken: c["session_token"] as? String)
            let signer = SigV4(credentials: creds, region: c["region"] as! String, service: c["service"] as! String)
            let path = c["path"] as! String
            let s = signer.sign(method: c["method"] as! String, path: path, query: pairs("query"), headers: pairs("headers"),
                                payloadHash: c["payload_hash"] as! String, time: (c["time"] as! NSNumber).int64Value)
            let expected = c["expected"] as! [String: String]
            XCTAssertEqual(s.encodedPath, expected["encoded_path"], path)
            XCTAssertEqual(s.canonicalRequest, expected["canonical_request"], path)
            XCTAssertEqual(s.headers.last!.value, expected["authorization"], path)
            if creds.sessionToken != nil { sessions += 1 }
            if !(c["query"] as! [[String]]).isEmpty { queries += 1 }
            if path.unicodeScalars.contains(where: { $0.value > 127 }) { unicode += 1 }
        }
        // The random cases cover what they should.
        XCTAssertGreaterThan(sessions, 50)
        XCTAssertGreaterThan(queries, 100)
        XCTAssertGreaterThan(unicode, 100)
    }
}
