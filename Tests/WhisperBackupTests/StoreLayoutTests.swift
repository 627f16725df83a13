import Foundation
import XCTest
@testable import WhisperBackup

final class StoreLayoutTests: XCTestCase {
    let hash = String(repeating: "ab", count: 32)

    func testKeyRoundTrip() throws {
        let l = StoreLayout(prefix: "node1")
        XCTAssertEqual(l.prefix, "node1/")
        let t = Timestamp.parse("2026-11-27T03:54:33Z")!
        let key = l.key(metric: "servers.web1.cpu.user", time: t, hash: hash)
        XCTAssertEqual(key, "node1/servers.web1.cpu.user/20261127T035433Z.\(hash).wsp.gz")
        let v = try XCTUnwrap(l.parse(key))
        XCTAssertEqual(v.metric, "servers.web1.cpu.user")
        XCTAssertEqual(v.time, t)
        XCTAssertEqual(v.hash, hash)
        XCTAssertFalse(v.legacy)
    }

    func testDeltaKeysNameTheirBaseAndRoundTrip() throws {
        let l = StoreLayout(prefix: "node1")
        let t = Timestamp.parse("2026-12-04T03:00:00Z")!
        let base = VersionRef(time: t - 86400, hash: String(repeating: "cd", count: 32))
        let key = l.deltaKey(metric: "a.b", time: t, hash: hash, base: base)
        XCTAssertEqual(key, "node1/a.b/20261204T030000Z.\(hash).20261203T030000Z.\(base.hash).wspd.gz")
        let v = try XCTUnwrap(l.parse(key))
        XCTAssertEqual(v.base, base)
        XCTAssertTrue(v.isDelta)
        XCTAssertEqual(v.hash, hash)
        XCTAssertEqual(v.time, t)
        XCTAssertEqual(l.key(of: v), key)
        XCTAssertEqual(l.entry(l.badKey(key))?.entry, .bad(versionKey: key))
        // A full version has no base; its key is as before.
        let full = try XCTUnwrap(l.parse(l.key(metric: "a.b", time: t, hash: hash)))
        XCTAssertNil(full.base)
        XCTAssertEqual(l.key(of: full), l.key(metric: "a.b", time: t, hash: hash))
        // A base that is not older than the version (a chain could loop), or a short hash: not a version.
        XCTAssertNil(l.parse(l.deltaKey(metric: "a.b", time: t, hash: hash, base: VersionRef(time: t, hash: base.hash))))
        XCTAssertNil(l.parse(String(key.dropLast(StoreLayout.deltaSuffix.count + 1)) + StoreLayout.deltaSuffix))
        XCTAssertEqual(l.entry(key.replacingOccurrences(of: ".wspd.gz", with: ".wspd"))?.entry, .other)
    }

    func testEmptyAndSlashedPrefixes() {
        XCTAssertEqual(StoreLayout(prefix: "").prefix, "")
        // A leading "/" is part of an object store key (the Python tool made such keys).
        XCTAssertEqual(StoreLayout(prefix: "/a/b").prefix, "/a/b/")
        XCTAssertEqual(try StoreURL("s3://bucket/a/b/").keyPrefix, "a/b/")
        XCTAssertEqual(try StoreURL("s3://bucket//a/b/").keyPrefix, "/a/b/")
        XCTAssertEqual(try StoreURL("s3://bucket").keyPrefix, "")
        XCTAssertEqual(StoreLayout(prefix: "").metricPrefix("m"), "m/")
    }

    func testNonVersionKeysAreIgnored() {
        let l = StoreLayout(prefix: "")
        XCTAssertNil(l.parse("m/20261127T035433Z.\(hash).wsp"))
        XCTAssertNil(l.parse("m/20261127T035433Z.\(hash.dropLast()).wsp.gz"))
        XCTAssertNil(l.parse("m/2015-01-26T15:41:55+00:00.sha1"))
        XCTAssertNil(l.parse("20261127T035433Z.\(hash).wsp.gz"))
        XCTAssertNil(l.parse("other/m/20261127T035433Z.\(hash).wsp.gz".replacingOccurrences(of: "other/", with: "x/y/")))
        XCTAssertNil(StoreLayout(prefix: "p").parse("q/m/20261127T035433Z.\(hash).wsp.gz"))
    }

    func testLegacyKeys() throws {
        let l = StoreLayout(prefix: "graphite")
        let v = try XCTUnwrap(l.parse("graphite/a.b/2015-01-26T15:41:55+00:00.wsp.gz"))
        XCTAssertTrue(v.legacy)
        XCTAssertEqual(v.metric, "a.b")
        XCTAssertEqual(v.time, Timestamp.parse("2015-01-26T15:41:55Z"))
        XCTAssertEqual(l.legacyHashKey(v.key), "graphite/a.b/2015-01-26T15:41:55+00:00.sha1")
    }

    func testEntriesOfAMetric() {
        let l = StoreLayout(prefix: "/p")
        let v = "/p/a.b/20261127T035433Z.\(hash).wsp.gz"
        XCTAssertEqual(l.entry(v)?.metric, "a.b")
        if case .version(let x)? = l.entry(v)?.entry { XCTAssertEqual(x.hash, hash) } else { XCTFail("not a version") }
        XCTAssertEqual(l.entry("/p/a.b/2015-01-26T15:41:55+00:00.sha1")?.entry,
                       .legacyHash(versionKey: "/p/a.b/2015-01-26T15:41:55+00:00.wsp.gz"))
        XCTAssertEqual(l.entry("/p/a.b/gone-since.20261127T035433Z")?.entry, .marker(time: Timestamp.parse("2026-11-27T03:54:33Z")!))
        XCTAssertEqual(l.markerKey(metric: "a.b", time: Timestamp.parse("2026-11-27T03:54:33Z")!), "/p/a.b/gone-since.20261127T035433Z")
        XCTAssertEqual(l.entry("/p/a.b/notes.txt")?.entry, .other)
        XCTAssertNil(l.entry("p/a.b/notes.txt"))
        XCTAssertNil(l.entry("/p/top-level"))
    }

    func testTimestamps() {
        XCTAssertEqual(Timestamp.format(0), "19700101T000000Z")
        XCTAssertEqual(Timestamp.parse("20261127T035433Z"), Timestamp.parse("2026-11-27T03:54:33Z"))
        XCTAssertEqual(Timestamp.parse("2026-11-27T05:54:33+02:00"), Timestamp.parse("2026-11-27T03:54:33Z"))
        XCTAssertEqual(Timestamp.parse("2026-11-27"), Timestamp.parse("2026-11-27T00:00:00Z"))
        XCTAssertEqual(Timestamp.parse("@1795000000"), 1795000000)
        XCTAssertNil(Timestamp.parse("2026-13-01"))
        XCTAssertNil(Timestamp.parse("yesterday"))
        let t: Int64 = 1795000000
        XCTAssertEqual(Timestamp.parseBasic(Substring(Timestamp.format(t))), t)
    }

    /// The basic form written digit by digit is what printf writes from gmtime, from year 1
    /// to past 9999 (five digits of year there, as before).
    func testTimestampFormatMatchesPrintf() {
        var rng = SystemRandomNumberGenerator()
        let edges: [Int64] = [-62_135_596_800, -1, 0, 59, 951_782_400, 1_795_000_000, 253_402_300_799, 253_402_300_800]
        for t in edges + (0..<2000).map({ _ in Int64.random(in: -62_135_596_800...300_000_000_000, using: &rng) }) {
            var tt = time_t(t), tm = tm()
            gmtime_r(&tt, &tm)
            let want = String(format: "%04d%02d%02dT%02d%02d%02dZ", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec)
            XCTAssertEqual(Timestamp.format(t), want, "\(t)")
        }
    }

    func testMetricNames() {
        XCTAssertNoThrow(try MetricName.validate("servers.web 1.cpu+x:y%z.é"))
        for bad in ["", "..", "a..b", ".a", "a.", "a/b", "a\tb", "a\nb", "a\u{0}b", String(repeating: "x", count: 2000)] {
            XCTAssertThrowsError(try MetricName.validate(bad), bad)
        }
        XCTAssertEqual(MetricName.relativePath("a.b.c"), "a/b/c.wsp")
        XCTAssertEqual(MetricName.fromRelativePath("a/b/c.wsp"), "a.b.c")
        XCTAssertNil(MetricName.fromRelativePath("a/b/c.txt"))
    }

    func testLongNamesGetADirectoryThatFitsAndNamesThatFitMapAsBefore() {
        let hash = String(repeating: "ab", count: 32)
        let file = StoreLayout(prefix: "", limits: .file)
        let object = StoreLayout(prefix: "node1", limits: .object)
        let fits = String(repeating: "a", count: 255)
        XCTAssertEqual(file.key(metric: fits, time: 0, hash: hash), fits + "/19700101T000000Z.\(hash).wsp.gz")
        let long = String(repeating: "é", count: 150)           // 300 bytes
        XCTAssertTrue(file.isLong(long))
        XCTAssertFalse(object.isLong(long))
        XCTAssertEqual(object.metricPrefix(long), "node1/" + long + "/")
        let dir = file.directory(long)
        XCTAssertEqual(dir.utf8.count, 200 + 33)
        XCTAssertTrue(dir.hasPrefix(String(repeating: "é", count: 100) + "~"))
        XCTAssertTrue(StoreLayout.looksLong(dir))
        XCTAssertTrue(file.fullNameFits(long, directory: dir))
        XCTAssertFalse(file.fullNameFits(long + "x", directory: dir))
        XCTAssertEqual(file.entry(dir + "/full-name")?.entry, .fullName)
        XCTAssertEqual(file.parse(file.key(metric: long, time: 0, hash: hash))?.metric, dir)
        // An odd head: a cut never splits a character.
        XCTAssertEqual(StoreLayout.head("aé", 2), "a")
        let huge = String(repeating: "b", count: 1000)
        XCTAssertTrue(object.isLong(huge))
        XCTAssertEqual(object.listPrefix(huge), "node1/" + String(repeating: "b", count: 200))
        XCTAssertEqual(StoreLayout(prefix: "p").listPrefix(huge), "p/" + huge)
    }

    /// Object names are matched by bytes: a name that is a version only by bytes, not by
    /// characters (a combining mark or a prepended character at a boundary), is none.
    func testVersionNamesAreMatchedByBytesAsByCharacters() {
        let layout = StoreLayout(prefix: "p")
        let hash = String(repeating: "0", count: 64), base = String(repeating: "1", count: 64)
        let full = "20261127T035433Z.\(hash)", old = "20261126T035433Z.\(base)"
        XCTAssertEqual(layout.parse("p/m/\(full).wsp.gz")?.hash, hash)
        XCTAssertEqual(layout.parse("p/m/\(full).\(old).wspd.gz")?.base?.hash, base)
        for odd in ["\(full)\u{600}.wsp.gz", "\(full).\u{301}wsp.gz", "\(full)\u{301}.wsp.gz", "2026\r\n127T035433Z.\(hash).wsp.gz",
                    "20261127T035433Z.\u{301}\(hash.dropFirst()).wsp.gz", "\(full).\u{301}\(old.dropFirst()).wspd.gz",
                    "\(full)\u{600}.\(old).wspd.gz", "\(full).wsp.gz\u{301}", ".wsp.gz", "wsp.gz", ""] {
            XCTAssertNil(layout.parse("p/m/" + odd), odd.debugDescription)
            XCTAssertEqual(layout.entry("p/m/" + odd).map { "\($0.entry)" }, "other", odd.debugDescription)
        }
    }

    /// Keys are split at their last "/" byte, a "/" before a combining mark included (the
    /// store's directory is named by bytes).
    func testAKeySplitsAtItsLastSlashByte() {
        func byBytes(_ key: String) -> [String]? {
            let b = Array(key.utf8)
            guard let slash = b.lastIndex(of: UInt8(ascii: "/")), slash > 0, !b[..<slash].contains(UInt8(ascii: "/")) else { return nil }
            return [String(decoding: b[..<slash], as: UTF8.self), String(decoding: b[(slash + 1)...], as: UTF8.self)]
        }
        let keys = ["a.b/20261127T035433Z.\(String(repeating: "0", count: 64)).wsp.gz", "a/b/c", "/x", "a/", "a", "", "//",
                    "a\r\n/b", "a\r/\nb", "a/\r\n", "é.b/x", "e\u{301}/x", "a/\u{301}x", "a/b\u{301}/c", "m.é/1", "~/~", "\u{600}/x"]
        for key in keys {
            let got = StoreLayout.split(Substring(key)).map { [String($0.directory), String($0.name)] }
            XCTAssertEqual(got, byBytes(key), key.debugDescription)
        }
        XCTAssertEqual(StoreLayout.split("a/\u{301}x").map { [String($0.directory), String($0.name)] }, ["a", "\u{301}x"])
    }
}
