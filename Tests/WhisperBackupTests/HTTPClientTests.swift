import Foundation
import XCTest
@testable import WhisperBackup

/// Tests/integration/faultproxy.py on a free loopback port, serving objects from memory (a
/// minimal path-style S3) or forwarding to `upstream`, with faults applied to the attempts
/// of each request.
final class FaultProxy {
    let process = Process()
    let port: Int
    let logPath: String
    let dir: String

    init(faults: String = "", match: String? = nil, upstream: String? = nil, extra: [String] = []) throws {
        let repo = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let script = repo.appendingPathComponent("Tests/integration/faultproxy.py").path
        dir = NSTemporaryDirectory() + "faultproxy-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        logPath = dir + "/log"
        let portFile = dir + "/port"
        var args = [script, "--port-file", portFile, "--log", logPath, "--faults", faults]
        if let match { args += ["--match", match] }
        if let upstream { args += ["--upstream", upstream] } else { args.append("--memory") }
        args += extra
        tls = extra.contains("--tls")
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3"] + args
        try process.run()
        let deadline = Date().addingTimeInterval(10)
        while !FileManager.default.fileExists(atPath: portFile) {
            guard process.isRunning, Date() < deadline else { throw XCTSkip("faultproxy.py did not start (python3 missing?)") }
            usleep(20_000)
        }
        port = Int(try String(contentsOfFile: portFile, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines))!
    }

    var tls = false
    var base: String { "\(tls ? "https" : "http")://127.0.0.1:\(port)" }

    /// Logged requests: METHOD TARGET STATUS FAULT CONNECTION.
    func log() -> [[String]] {
        let text = (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? ""
        return text.split(separator: "\n").map { $0.split(separator: "\t", omittingEmptySubsequences: false).map(String.init) }
    }

    func stop() {
        if process.isRunning { process.terminate(); process.waitUntilExit() }
        try? FileManager.default.removeItem(atPath: dir)
    }

    deinit { stop() }
}

final class HTTPClientTests: XCTestCase {
    var tmp: String = ""

    override func setUpWithError() throws {
        tmp = NSTemporaryDirectory() + "http-tests-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        try FileManager.default.createDirectory(atPath: tmp, withIntermediateDirectories: true)
    }

    override func tearDown() { try? FileManager.default.removeItem(atPath: tmp) }

    func testPutGetHeadDeleteAndKeepAlive() throws {
        let proxy = try FaultProxy()
        defer { proxy.stop() }
        let http = try HTTPClient()
        let payload = (0..<300_000).map { UInt8(truncatingIfNeeded: $0 &* 7) }

        let put = try http.perform(HTTPRequest(method: "PUT", url: proxy.base + "/b/k%20x", body: .bytes(payload)))
        XCTAssertEqual(put.status, 200)
        XCTAssertEqual(put.header("ETag"), "\"\(Hex.encode(Digest.hash(.md5, payload)))\"")

        let inMemory = try http.perform(HTTPRequest(method: "GET", url: proxy.base + "/b/k%20x"))
        XCTAssertEqual(inMemory.status, 200)
        XCTAssertEqual(inMemory.body, payload)
        XCTAssertNil(inMemory.bodyMD5)

        let file = tmp + "/got"
        let toFile = try http.perform(HTTPRequest(method: "GET", url: proxy.base + "/b/k%20x", responseFile: file))
        XCTAssertEqual(toFile.status, 200)
        XCTAssertEqual(toFile.body, [])
        XCTAssertEqual(toFile.bodyBytes, Int64(payload.count))
        XCTAssertEqual(toFile.bodyMD5, Digest.hash(.md5, payload))
        XCTAssertEqual([UInt8](try Data(contentsOf: URL(fileURLWithPath: file))), payload)

        let head = try http.perform(HTTPRequest(method: "HEAD", url: proxy.base + "/b/k%20x"))
        XCTAssertEqual(head.status, 200)
        XCTAssertEqual(head.header("content-length"), String(payload.count))
        XCTAssertEqual(head.bodyBytes, 0)

        // An error answer's body stays in memory even when a response file was asked for.
        let missing = try http.perform(HTTPRequest(method: "GET", url: proxy.base + "/b/none", responseFile: tmp + "/none"))
        XCTAssertEqual(missing.status, 404)
        XCTAssertTrue(missing.bodyText.contains("NoSuchKey"))
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: tmp + "/none")).count, 0)

        let del = try http.perform(HTTPRequest(method: "DELETE", url: proxy.base + "/b/k%20x"))
        XCTAssertEqual(del.status, 204)
        XCTAssertEqual(http.requestCount, 6)

        // Every request went over one kept-alive connection.
        let log = proxy.log()
        XCTAssertEqual(log.count, 6)
        XCTAssertEqual(Set(log.map { $0[4] }).count, 1, "\(log)")
        XCTAssertEqual(log.map { $0[1] }.first, "/b/k%20x")
    }

    func testFileBodyAndHeadersAsGiven() throws {
        let proxy = try FaultProxy()
        defer { proxy.stop() }
        let http = try HTTPClient()
        let src = tmp + "/body"
        let payload = Array("a file body\n".utf8) + [UInt8](repeating: 0x5a, count: 70_000)
        try Data(payload).write(to: URL(fileURLWithPath: src))
        let r = try http.perform(HTTPRequest(method: "PUT", url: proxy.base + "/_echo",
                                             headers: [("X-Amz-Date", "20130524T000000Z"), ("Content-MD5", "abc==")],
                                             body: .file(src)))
        XCTAssertEqual(r.status, 200)
        let text = r.bodyText
        let head = text.components(separatedBy: "\n\n")[0].split(separator: "\n").map(String.init)
        XCTAssertEqual(head[0], "PUT")
        XCTAssertTrue(head.contains("x-amz-date: 20130524T000000Z"))
        XCTAssertTrue(head.contains("content-md5: abc=="))
        XCTAssertTrue(head.contains("content-length: \(payload.count)"))
        XCTAssertTrue(head.contains("host: 127.0.0.1:\(proxy.port)"))
        XCTAssertFalse(head.contains { $0.hasPrefix("expect:") })
        XCTAssertFalse(head.contains { $0.hasPrefix("content-type:") })
        XCTAssertEqual(Array(r.body.suffix(payload.count)), payload)

        // POST with a body and a custom method; an empty POST sends Content-Length: 0.
        let post = try http.perform(HTTPRequest(method: "POST", url: proxy.base + "/_echo?delete",
                                                headers: [("Content-Type", "application/xml")], body: .bytes(Array("<x/>".utf8))))
        XCTAssertTrue(post.bodyText.hasPrefix("POST\n"))
        XCTAssertTrue(post.bodyText.contains("content-type: application/xml\n"))
        XCTAssertTrue(post.bodyText.hasSuffix("\n\n<x/>"))
        let empty = try http.perform(HTTPRequest(method: "POST", url: proxy.base + "/_echo"))
        XCTAssertTrue(empty.bodyText.contains("content-length: 0\n"))
    }

    func testFaultsAreClassified() throws {
        let proxy = try FaultProxy(faults: "drop,reset,503,cut,pass", match: "^(GET|PUT) /b/f")
        defer { proxy.stop() }
        let payload = [UInt8](repeating: 7, count: 100_000)
        // A new client per attempt: on a kept-alive connection libcurl itself resends a request
        // that got no answer at all, which would hide the first fault.
        func put() throws -> HTTPResponse { try HTTPClient().perform(HTTPRequest(method: "PUT", url: proxy.base + "/b/f", body: .bytes(payload))) }
        func get() throws -> HTTPResponse { try HTTPClient().perform(HTTPRequest(method: "GET", url: proxy.base + "/b/f", responseFile: tmp + "/f")) }
        func assertTransient(_ body: @autoclosure () throws -> HTTPResponse, line: UInt = #line) {
            XCTAssertThrowsError(try body(), line: line) { e in
                XCTAssertEqual((e as? HTTPError)?.kind, .connection, "\(e)", line: line)
                XCTAssertTrue((e as? HTTPError)?.isTransient ?? false, line: line)
            }
        }
        // PUT /f: dropped, reset, 503 (a response, not an error), cut (a PUT answer has no
        // body to cut, so it arrives whole), then stored.
        assertTransient(try put())
        assertTransient(try put())
        let slow = try put()
        XCTAssertEqual(slow.status, 503)
        XCTAssertTrue(slow.bodyText.contains("SlowDown"))
        XCTAssertEqual(try put().status, 200)

        // GET /f: dropped, reset, 503, then cut half way: a short body is a connection error.
        assertTransient(try get())
        assertTransient(try get())
        XCTAssertEqual(try get().status, 503)
        assertTransient(try get())
        let ok = try get()
        XCTAssertEqual(ok.status, 200)
        XCTAssertEqual(ok.bodyMD5, Digest.hash(.md5, payload))
        XCTAssertEqual(proxy.log().filter { $0[0] == "GET" }.map { $0[3] }, ["drop", "reset", "503", "cut", "pass"])
    }

    func testKeptAliveClientSurvivesDroppedConnections() throws {
        let proxy = try FaultProxy(faults: "drop,drop,drop,503,cut", match: "^GET /b/g")
        defer { proxy.stop() }
        let http = try HTTPClient()
        let payload = [UInt8](repeating: 9, count: 50_000)
        XCTAssertEqual(try http.perform(HTTPRequest(method: "PUT", url: proxy.base + "/b/g", body: .bytes(payload))).status, 200)
        // Whatever libcurl resends by itself, each attempt ends in a transient error or a
        // response, and the content finally arrives whole.
        var outcomes: [String] = []
        for _ in 0..<6 {
            do {
                let r = try http.perform(HTTPRequest(method: "GET", url: proxy.base + "/b/g", responseFile: tmp + "/g"))
                outcomes.append(String(r.status))
                if r.status == 200 {
                    XCTAssertEqual(r.bodyMD5, Digest.hash(.md5, payload))
                    break
                }
            } catch let e as HTTPError {
                XCTAssertTrue(e.isTransient, "\(e)")
                outcomes.append("error")
            }
        }
        XCTAssertEqual(outcomes.last, "200", "\(outcomes)")
        XCTAssertTrue(outcomes.contains("503"), "\(outcomes)")
    }

    func testRefusedAndStalled() throws {
        // A port nobody listens on.
        let http = try HTTPClient()
        XCTAssertThrowsError(try http.perform(HTTPRequest(method: "GET", url: "http://127.0.0.1:9/x"))) { e in
            XCTAssertEqual((e as? HTTPError)?.kind, .connection, "\(e)")
        }
        let proxy = try FaultProxy(faults: "stall:4", match: "^GET /b/slow")
        defer { proxy.stop() }
        var o = HTTPClient.Options()
        o.stallTimeout = 1
        let impatient = try HTTPClient(options: o)
        let t0 = Date()
        XCTAssertThrowsError(try impatient.perform(HTTPRequest(method: "GET", url: proxy.base + "/b/slow"))) { e in
            XCTAssertEqual((e as? HTTPError)?.kind, .timeout, "\(e)")
            XCTAssertTrue((e as? HTTPError)?.isTransient ?? false)
        }
        XCTAssertLessThan(Date().timeIntervalSince(t0), 3.5)
        // The handle is usable after a failure.
        XCTAssertEqual(try impatient.perform(HTTPRequest(method: "GET", url: proxy.base + "/b/slow")).status, 404)
    }

    func testBodyCapAndDeadline() throws {
        let proxy = try FaultProxy(faults: "endless", match: "^GET /b/endless")
        defer { proxy.stop() }
        var o = HTTPClient.Options()
        o.maxMemoryBody = 1 << 20
        o.deadline = 1
        let http = try HTTPClient(options: o)
        // An answer that never ends stops at the cap, not at the host's memory.
        XCTAssertThrowsError(try http.perform(HTTPRequest(method: "GET", url: proxy.base + "/b/endless"))) { e in
            XCTAssertEqual((e as? HTTPError)?.kind, .other, "\(e)")
            XCTAssertTrue("\(e)".contains("the answer passed 1 MiB"), "\(e)")
        }
        // A trickle (a byte every 0.4 s) never trips the stall rule; the deadline ends it.
        let trickle = try FaultProxy(faults: "trickle", match: "^GET /b/slow")
        defer { trickle.stop() }
        let t0 = Date()
        XCTAssertThrowsError(try http.perform(HTTPRequest(method: "GET", url: trickle.base + "/b/slow"))) { e in
            XCTAssertEqual((e as? HTTPError)?.kind, .timeout, "\(e)")
            XCTAssertTrue("\(e)".contains("no complete answer within the deadline of 1."), "\(e)")
        }
        XCTAssertLessThan(Date().timeIntervalSince(t0), 4)
        // The handle is usable after both.
        XCTAssertEqual(try http.perform(HTTPRequest(method: "GET", url: trickle.base + "/b/slow")).status, 404)
    }

    func testTLSIsVerifiedUnlessInsecure() throws {
        // A self-signed certificate for 127.0.0.1.
        let cert = tmp + "/cert.pem", key = tmp + "/key.pem"
        let openssl = Process()
        openssl.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        openssl.arguments = ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
                             "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", key, "-out", cert]
        openssl.standardError = FileHandle.nullDevice
        do { try openssl.run() } catch { throw XCTSkip("openssl not available") }
        openssl.waitUntilExit()
        guard openssl.terminationStatus == 0 else { throw XCTSkip("openssl could not make a certificate") }
        let proxy = try FaultProxy(extra: ["--tls", cert, key])
        defer { proxy.stop() }
        XCTAssertTrue(proxy.base.hasPrefix("https://"))

        XCTAssertThrowsError(try HTTPClient().perform(HTTPRequest(method: "GET", url: proxy.base + "/_echo"))) { e in
            XCTAssertEqual((e as? HTTPError)?.kind, .tls, "\(e)")
            XCTAssertFalse((e as? HTTPError)?.isTransient ?? true)
            XCTAssertTrue("\(e)".contains("--insecure"), "\(e)")
        }
        var insecure = HTTPClient.Options()
        insecure.insecure = true
        XCTAssertEqual(try HTTPClient(options: insecure).perform(HTTPRequest(method: "GET", url: proxy.base + "/_echo")).status, 200)
        var trusted = HTTPClient.Options()
        trusted.caBundle = cert
        XCTAssertEqual(try HTTPClient(options: trusted).perform(HTTPRequest(method: "GET", url: proxy.base + "/_echo")).status, 200)
    }

    func testMissingBodyFileIsALocalError() throws {
        let http = try HTTPClient()
        XCTAssertThrowsError(try http.perform(HTTPRequest(method: "PUT", url: "http://127.0.0.1:9/x", body: .file(tmp + "/absent")))) { e in
            XCTAssertEqual((e as? HTTPError)?.kind, .local, "\(e)")
        }
    }
}
