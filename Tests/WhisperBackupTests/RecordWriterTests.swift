#if canImport(Glibc)
import Glibc
#endif
import XCTest
@testable import WhisperBackup

/// Records held for the next write leave whole, in order, in writes of at most PIPE_BUF.
final class RecordWriterTests: XCTestCase {
    /// Everything readable from a non-blocking pipe now, one read(2) at a time.
    func reads(_ fd: CInt) -> [String] {
        var out: [String] = []
        var buf = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            let n = buf.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n <= 0 { return out }
            out.append(String(decoding: buf[0..<n], as: UTF8.self))
        }
    }

    func testHeldRecordsGoOutWithTheNextWriteWholeAndInOrder() throws {
        let (r, w) = try system_pipe()
        defer { close(r); close(w) }
        _ = fcntl(r, F_SETFL, O_NONBLOCK)
        let writer = RecordWriter(fd: w)
        XCTAssertTrue(writer.hold("a", "1"))
        XCTAssertTrue(writer.hold("b", "2"))
        XCTAssertEqual(reads(r), [], "held records are not written yet")
        XCTAssertTrue(writer.write("c", "/spool/3.wsp.gz"))
        XCTAssertEqual(reads(r), ["a\t1\nb\t2\nc\t/spool/3.wsp.gz\n"], "in order")
        XCTAssertTrue(writer.hold("d", "4"))
        XCTAssertTrue(writer.flush())
        XCTAssertEqual(reads(r), ["d\t4\n"])
        XCTAssertTrue(writer.hold("e", "5"))
        RecordWriter.flushAll()
        XCTAssertEqual(reads(r), ["e\t5\n"], "flushAll writes what every writer holds")
    }

    func testNoWriteIsLongerThanPipeBufAndNoRecordIsSplit() throws {
        let (r, w) = try system_pipe()
        defer { close(r); close(w) }
        _ = fcntl(r, F_SETFL, O_NONBLOCK)
        let writer = RecordWriter(fd: w)
        let records = (0..<200).map { ["metric.\($0)", String(repeating: "x", count: 20 + $0 % 50)] }
        for (i, f) in records.enumerated() {
            XCTAssertTrue(i % 7 == 6 ? writer.write(Record(f)) : writer.hold(Record(f)))
            // What is held would go out in one write: never more than the pipe takes whole,
            // and always whole records.
            XCTAssertLessThanOrEqual(writer.heldBytes.count, Int(PIPE_BUF))
            XCTAssertTrue(writer.heldBytes.isEmpty || writer.heldBytes.last == 10)
        }
        XCTAssertTrue(writer.flush())
        let chunks = reads(r)
        XCTAssertEqual(chunks.joined(), records.map { $0.joined(separator: "\t") + "\n" }.joined())
    }

    func testAReaderGoneIsSeenAtTheWriteOfWhatIsHeld() throws {
        let (r, w) = try system_pipe()
        defer { close(w) }
        close(r)
        signal(SIGPIPE, SIG_IGN)   // as the tools run (Signals.install): EPIPE, not a death
        let writer = RecordWriter(fd: w)
        XCTAssertTrue(writer.hold("a", "1"), "not known yet")
        XCTAssertFalse(writer.flush())
        XCTAssertTrue(writer.closed)
        XCTAssertFalse(writer.hold("b", "2"))
        XCTAssertTrue(RecordWriter.readerLeft)
    }
}
