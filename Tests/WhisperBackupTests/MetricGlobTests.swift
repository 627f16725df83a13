import XCTest
@testable import WhisperBackup

final class MetricGlobTests: XCTestCase {
    func m(_ p: String, _ s: String) throws -> Bool { try MetricGlob(p).matches(s) }

    /// Only a pattern of stars alone matches everything without being run.
    func testOnlyStarsMatchEverything() throws {
        for p in ["*", "**", "***"] { XCTAssertTrue(try MetricGlob(p).matchesEverything, p) }
        for p in ["*.*", "a*", "*a", "?", "{*}", "[*]", "*,*"] { XCTAssertFalse(try MetricGlob(p).matchesEverything, p) }
        XCTAssertTrue(try MetricGlob("**").matches("a.\u{301}b"))
    }

    func testStarCrossesDots() throws {
        XCTAssertTrue(try m("servers.*", "servers.web1.cpu.user"))
        XCTAssertTrue(try m("*rx", "servers.host.net.eth0.rx"))
        XCTAssertFalse(try m("servers.*", "server.web1"))
        XCTAssertTrue(try m("*", "a"))
    }

    func testQuestionClassAndNegation() throws {
        XCTAssertTrue(try m("a.b?", "a.b1"))
        XCTAssertFalse(try m("a.b?", "a.b12"))
        XCTAssertTrue(try m("a.[xy]z", "a.yz"))
        XCTAssertFalse(try m("a.[!xy]z", "a.yz"))
        XCTAssertTrue(try m("a.[!xy]z", "a.qz"))
        XCTAssertTrue(try m("h[0-2]", "h1"))
        XCTAssertFalse(try m("h[0-2]", "h3"))
        XCTAssertTrue(try m("a[]]", "a]"))
    }

    func testBracesNestAndCombine() throws {
        let g = try MetricGlob("s.{web,db{1,2}}.cpu")
        XCTAssertTrue(g.matches("s.web.cpu"))
        XCTAssertTrue(g.matches("s.db2.cpu"))
        XCTAssertFalse(g.matches("s.db3.cpu"))
        XCTAssertEqual(g.literalPrefix, "s.")
        XCTAssertEqual(try MetricGlob("servers.web*").literalPrefix, "servers.web")
        XCTAssertEqual(try MetricGlob("x.{a,b}").literalPrefix, "x.")
        XCTAssertTrue(try MetricGlob("a.b.c").isLiteral)
        XCTAssertFalse(try MetricGlob("a.*").isLiteral)
    }

    func testEscapes() throws {
        XCTAssertTrue(try m("a\\*", "a*"))
        XCTAssertFalse(try m("a\\*", "ab"))
    }

    func testPrefixPruning() throws {
        let g = try MetricGlob("servers.web*.cpu")
        XCTAssertTrue(g.couldMatch(prefix: "servers."))
        XCTAssertTrue(g.couldMatch(prefix: "servers.web1."))
        XCTAssertFalse(g.couldMatch(prefix: "servers.db1."))
        XCTAssertFalse(g.couldMatch(prefix: "other."))
        XCTAssertTrue(try MetricGlob("*").couldMatch(prefix: "anything."))
    }

    func testBadPatterns() {
        XCTAssertThrowsError(try MetricGlob("a[bc"))
        XCTAssertThrowsError(try MetricGlob("a{b,c"))
        XCTAssertThrowsError(try MetricGlob("a\\"))
    }

    func testNoBacktrackingBlowUp() throws {
        let g = try MetricGlob(String(repeating: "*a", count: 30) + "b")
        let s = String(repeating: "a", count: 200)
        let t0 = Date()
        XCTAssertFalse(g.matches(s))
        XCTAssertLessThan(Date().timeIntervalSince(t0), 1)
    }

    func testBraceGroupsDoNotExpand() throws {
        // 2^40 expansions if alternatives were multiplied out.
        let g = try MetricGlob(String(repeating: "{a,b}", count: 40))
        let t0 = Date()
        XCTAssertTrue(g.matches(String(repeating: "ab", count: 20)))
        XCTAssertFalse(g.matches(String(repeating: "ab", count: 20) + "a"))
        XCTAssertTrue(g.couldMatch(prefix: "abba"))
        XCTAssertEqual(g.literalPrefix, "")
        XCTAssertLessThan(Date().timeIntervalSince(t0), 1)
        XCTAssertEqual(try MetricGlob("a{b}c").literalPrefix, "abc")
        XCTAssertTrue(try MetricGlob("a{b}c").isLiteral)
        XCTAssertTrue(try m("a{,b}c", "ac"))
        XCTAssertTrue(try m("a}b,c", "a}b,c"))
        XCTAssertTrue(try m("x.[{]y", "x.{y"))
    }
}
