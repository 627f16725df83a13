import XCTest
@testable import WhisperBackup

final class DiagnosticsTests: XCTestCase {
    func testDurations() {
        XCTAssertEqual(Diagnostics.duration(0), "0s")
        XCTAssertEqual(Diagnostics.duration(44.6), "45s")
        XCTAssertEqual(Diagnostics.duration(187), "3m07s")
        XCTAssertEqual(Diagnostics.duration(7500), "2h05m")
    }

    func testProgressLineWithAndWithoutTotal() {
        let d = Diagnostics(tool: "wsp-snap", progress: false)
        d.bytesIn = 10 << 20
        d.bytesOut = 1 << 20
        for _ in 0..<30 { d.done("snapped") }
        XCTAssertEqual(d.progressLine(elapsed: 10),
                       "wsp-snap: 30 records, 0 failed, 10.0 MiB in, 1.0 MiB out, 3/s, 1.0 MiB/s")
        d.total = 120
        XCTAssertEqual(d.progressLine(elapsed: 10),
                       "wsp-snap: 30/120 records (25%), 0 failed, 10.0 MiB in, 1.0 MiB out, 3/s, 1.0 MiB/s, ETA 30s")
        d.total = 30
        XCTAssertTrue(d.progressLine(elapsed: 10).hasSuffix("30/30 records (100%), 0 failed, 10.0 MiB in, 1.0 MiB out, 3/s, 1.0 MiB/s, ETA 0s"))
    }

    func testExpectedCountFromArgumentsAndFiles() throws {
        XCTAssertEqual(RecordInput(arguments: ["a\tx", "", "b\n"]).expectedCount, 2)
        let dir = NSTemporaryDirectory() + "diag-\(getpid())"
        try Path.makeDirectories(dir)
        let path = dir + "/records"
        try AtomicFile.write(path, bytes: Array("a\tx\n\nb\tx\nc".utf8), placement: .replace)
        let fd = try system_open(path, O_RDONLY)
        defer { system_close(fd) }
        XCTAssertEqual(LineReader.countLines(fd: fd), 3)
        // Counting does not move the offset: a reader still sees every record.
        let reader = LineReader(fd: fd)
        XCTAssertEqual(reader.next(), "a\tx")
        XCTAssertEqual(LineReader.countLines(fd: fd), 0)   // the reader buffered the rest
        var p: [CInt] = [0, 0]
        XCTAssertEqual(pipe(&p), 0)
        defer { system_close(p[0]); system_close(p[1]) }
        XCTAssertNil(LineReader.countLines(fd: p[0]))
    }

    func testRedactionMasksSecretsAndCredentialFields() {
        Redaction.register("k3y-value-42")
        XCTAssertEqual(Redaction.apply("bad k3y-value-42 here"), "bad <redacted> here")
        XCTAssertEqual(Redaction.apply("X-Auth-Key: abc123 X-Auth-User: u"), "X-Auth-Key: <redacted> X-Auth-User: u")
        XCTAssertEqual(Redaction.apply(#"{"password": "hunter22", "name": "x"}"#), #"{"password": "<redacted>", "name": "x"}"#)
        XCTAssertEqual(Redaction.apply(#"{"password":{"user":{"password":"pw"}}}"#), #"{"password":{"user":{"password":"<redacted>"}}}"#)
        XCTAssertEqual(Redaction.apply("Authorization: AWS4-HMAC-SHA256 Credential=a, Signature=b\nnext"),
                       "Authorization: <redacted>\nnext")
        // Words that merely mention a credential stay as they are.
        let plain = "wrong credentials: the signature does not match; check the secret key (AWS_SECRET_ACCESS_KEY or the profile)"
        XCTAssertEqual(Redaction.apply(plain), plain)
    }
}

