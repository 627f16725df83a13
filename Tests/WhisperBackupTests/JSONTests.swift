import Foundation
import XCTest
@testable import WhisperBackup

final class JSONTests: XCTestCase {
    func testParsesValues() throws {
        let doc = try JSON.parse(#" {"a": [1, -2.5e3, true, false, null], "s": "x\"\\\/\b\f\n\r\t\u00e9\ud83d\ude00", "big": 12345678901234567890, "a": 7} "#)
        XCTAssertEqual(doc["a"], .number("7"), "the last of repeated members")
        XCTAssertEqual(doc["s"]?.string, "x\"\\/\u{8}\u{c}\n\r\t\u{e9}\u{1F600}")
        XCTAssertEqual(doc["big"], .number("12345678901234567890"))
        XCTAssertNil(doc["big"]?.int64)
        guard case .object(let members) = doc else { return XCTFail() }
        XCTAssertEqual(members.map(\.key), ["a", "s", "big", "a"])
        XCTAssertEqual(members[0].value.array?.count, 5)
        XCTAssertEqual(members[0].value.array?[1].double, -2500)
        XCTAssertEqual(try JSON.parse("[]"), .array([]))
        XCTAssertEqual(try JSON.parse("{}"), .object([]))
        XCTAssertEqual(try JSON.parse(Array("\"caf\u{e9}\"".utf8)).string, "caf\u{e9}")
    }

    func testRejectsMalformed() {
        for bad in ["", "[", "[1,]", "{\"a\" 1}", "{\"a\":1,}", "01", "1.", "-", "1e", "tru", "\"abc", "\"\\x\"", "\"\\ud800\"",
                    "\"\\udc00x\"", "[1] 2", "\"a\u{1}\"", "nul", "{a:1}"] {
            XCTAssertThrowsError(try JSON.parse(bad), bad)
        }
        XCTAssertThrowsError(try JSON.parse([0x22, 0xFF, 0x22]), "invalid UTF-8")
        XCTAssertThrowsError(try JSON.parse(String(repeating: "[", count: 500) + String(repeating: "]", count: 500)), "depth")
    }

    func testWriterRoundTripsThroughFoundation() throws {
        let v = JSON.object([("k", .string("q\"\\\n\u{1}\u{e9}\u{1F600}")), ("n", .number("-1.5")), ("a", .array([.bool(true), .null]))])
        XCTAssertEqual(v.text, #"{"k":"q\"\\\n\u0001é😀","n":-1.5,"a":[true,null]}"#)
        XCTAssertEqual(try JSON.parse(v.text), v)
        let f = try JSONSerialization.jsonObject(with: Data(v.text.utf8)) as! [String: Any]
        XCTAssertEqual(f["k"] as? String, "q\"\\\n\u{1}\u{e9}\u{1F600}")
    }
}
