import XCTest
@testable import WhisperBackup

/// Names are taken apart by bytes: a separator next to a combining mark (U+0301) or a
/// prepended character (U+0600) is still one, and canonically equivalent names are not the
/// same name.
final class ByteTextTests: XCTestCase {
    /// The reference: split the UTF-8 bytes.
    func byBytes(_ s: String, _ sep: UInt8, omittingEmpty: Bool) -> [String] {
        Array(s.utf8).split(separator: sep, omittingEmptySubsequences: omittingEmpty).map { String(decoding: $0, as: UTF8.self) }
    }

    func testSplitIsByBytes() {
        let samples = ["", ".", "..", "a", "a.b", "a..b", ".a.", "a.\u{301}b", "c\u{600}.d", "\u{301}.\u{301}", "é.e\u{301}",
                       "a\tb\t", "\t\u{301}x\t", "x\u{600}\ty", "日本.語", "a.b.c.d.e.f"]
        for s in samples {
            for sep in [UInt8(ascii: "."), UInt8(ascii: "\t"), UInt8(ascii: "/")] {
                let got = s.split(byte: sep).map(String.init)
                XCTAssertEqual(got.joined(separator: String(UnicodeScalar(sep))), s, s.debugDescription)
                XCTAssertEqual(got.count, s.utf8.filter { $0 == sep }.count + 1, s.debugDescription)
                XCTAssertFalse(got.contains { $0.utf8.contains(sep) }, s.debugDescription)
                XCTAssertEqual(s.split(byte: sep, omittingEmpty: true).map(String.init), byBytes(s, sep, omittingEmpty: true), s.debugDescription)
                XCTAssertEqual(Substring(s).split(byte: sep).map(String.init), got)
            }
        }
        XCTAssertEqual("a.\u{301}b".split(byte: UInt8(ascii: ".")), ["a", "\u{301}b"])
        // What a split by characters does instead: no split at all.
        XCTAssertEqual("a.\u{301}b".split(separator: ".").count, 1)
    }

    func testPrefixesSuffixesAndEqualityAreByBytes() {
        XCTAssertTrue("/r/\u{301}x".hasPrefix(bytes: "/r/"))
        XCTAssertFalse("/r/\u{301}x".hasPrefix("/r/"))
        // Canonically equivalent, different bytes: another directory.
        XCTAssertTrue("/cafe\u{301}/x".hasPrefix("/caf\u{e9}/"))
        XCTAssertFalse("/cafe\u{301}/x".hasPrefix(bytes: "/caf\u{e9}/"))
        XCTAssertFalse("caf\u{e9}".sameBytes("cafe\u{301}"))
        XCTAssertTrue("f\u{600}.wsp".hasSuffix(bytes: ".wsp"))
        XCTAssertFalse("f\u{600}.wsp".hasSuffix(".wsp"))
        XCTAssertFalse("wsp".hasSuffix(bytes: ".wsp"))
        XCTAssertEqual("f\u{600}.wsp".droppingLast(bytes: 4), "f\u{600}")
        XCTAssertTrue("g.\u{301}h".contains(byte: UInt8(ascii: ".")))
    }

    func testMetricNamesAndPathsMapByBytes() throws {
        XCTAssertEqual(MetricName.relativePath("a.\u{301}b"), "a/\u{301}b.wsp")
        XCTAssertEqual(MetricName.relativePath("c\u{600}.d"), "c\u{600}/d.wsp")
        XCTAssertEqual(MetricName.fromRelativePath("a/\u{301}b.wsp"), "a.\u{301}b")
        XCTAssertEqual(MetricName.fromRelativePath("e/f\u{600}.wsp"), "e.f\u{600}")
        XCTAssertNil(MetricName.fromRelativePath(".wsp"))
        XCTAssertNoThrow(try MetricName.validate("a.\u{301}b"))
        for bad in ["a..b", ".a", "a.", "a.\u{301}.", "a/b", "a\tb"] {
            XCTAssertThrowsError(try MetricName.validate(bad), bad.debugDescription)
        }
        XCTAssertEqual(Path.lastComponent("a/\u{301}b"), "\u{301}b")
        XCTAssertEqual(Path.directory(of: "c\u{600}/d"), "c\u{600}")
        XCTAssertEqual(Path.join("c\u{600}/", "d"), "c\u{600}/d")
        XCTAssertEqual(Path.absolute("/x/\u{301}/../y"), "/x/y")
        XCTAssertEqual(BackupState.shardName("a.\u{301}b"), "a")
    }
}
