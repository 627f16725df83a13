import XCTest
@testable import WhisperBackup

/// A metric's objects read together from a listing: both layouts, the Python tool's
/// leftovers, markers; and the names the next stage may remove.
final class StoreListingTests: XCTestCase {
    let h1 = String(repeating: "1", count: 64), h2 = String(repeating: "2", count: 64)

    func store(_ keys: [String]) throws -> (Store, StoreLayout) {
        let dir = NSTemporaryDirectory() + "listing-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        try Path.makeDirectories(dir)
        let (s, l) = try StoreRegistry.open("file://" + dir, settings: StoreSettings())
        for k in keys { try s.put(k, body: .bytes(Array(k.utf8))) }
        return (s, l)
    }

    func testBothLayoutsLeftoversAndMarkers() throws {
        let m = "a.b"
        let (s, l) = try store([
            "\(m)/2015-01-26T15:41:55+00:00.wsp.gz", "\(m)/2015-01-26T15:41:55+00:00.sha1",   // complete legacy
            "\(m)/2015-02-01T00:00:00+00:00.wsp.gz",                                           // no .sha1
            "\(m)/2014-12-01T00:00:00+00:00.sha1",                                             // no .wsp.gz
            "\(m)/20261127T035433Z.\(h1).wsp.gz", "\(m)/20261127T035434Z.\(h2).wsp.gz",
            "\(m)/gone-since.20261201T000000Z", "\(m)/notes.txt",
            "a.b.c/20261127T035433Z.\(h1).wsp.gz", ".wsp-store-id",
        ])
        let o = try StoreListing.metric(m, in: s, layout: l)
        XCTAssertEqual(o.versions.map(\.key), ["\(m)/2015-01-26T15:41:55+00:00.wsp.gz",
                                               "\(m)/20261127T035433Z.\(h1).wsp.gz", "\(m)/20261127T035434Z.\(h2).wsp.gz"])
        XCTAssertEqual(o.incomplete.map(\.key), ["\(m)/2015-02-01T00:00:00+00:00.wsp.gz"])
        XCTAssertEqual(o.strayHashKeys, ["\(m)/2014-12-01T00:00:00+00:00.sha1"])
        XCTAssertEqual(o.markers.map(\.key), ["\(m)/gone-since.20261201T000000Z"])
        // leftovers older than a complete version may go; a newer one may be an upload in progress
        XCTAssertEqual(o.legacyLeftovers(olderThan: Timestamp.parse("2015-01-27")!, layout: l),
                       ["\(m)/2014-12-01T00:00:00+00:00.sha1"])
        XCTAssertEqual(Set(o.legacyLeftovers(olderThan: Timestamp.parse("2026-01-01")!, layout: l)),
                       ["\(m)/2015-02-01T00:00:00+00:00.wsp.gz", "\(m)/2014-12-01T00:00:00+00:00.sha1"])
        XCTAssertEqual(o.allKeys(layout: l).last, "\(m)/gone-since.20261201T000000Z")   // the marker goes last
        XCTAssertFalse(o.allKeys(layout: l).contains("\(m)/notes.txt"))                  // unknown keys are kept

        var seen: [String] = []
        try StoreListing.forEachMetric(in: s, layout: l, prefix: l.prefix) { seen.append($0.metric) }
        XCTAssertEqual(seen, ["a.b.c", "a.b"])   // key order: "a.b.c/" sorts before "a.b/"
    }

    /// A batch's metrics read from one listing of their range are what a listing of each
    /// gives: both layouts, bad marks, markers, deltas; names in the range not asked for stay
    /// out, a name the store lacks comes back empty, a long name (under HEAD~H/) is listed on
    /// its own. One listing request for the range where the store lists ranges.
    func testABatchListedAsOneRangeEqualsAListingPerMetric() throws {
        let long = "x." + String(repeating: "l", count: 300)
        let (fs, l) = try store([])
        let v1 = l.key(metric: "a.b", time: 1_795_000_000, hash: h1)
        let keys = [
            "a/20261127T035433Z.\(h1).wsp.gz",
            "a.b/2015-01-26T15:41:55+00:00.wsp.gz", "a.b/2015-01-26T15:41:55+00:00.sha1", v1, l.badKey(v1),
            l.deltaKey(metric: "a.b", time: 1_795_000_100, hash: h2, base: VersionRef(time: 1_795_000_000, hash: h1)),
            "a.b.c/20261127T035433Z.\(h1).wsp.gz", "a.b.c/gone-since.20261201T000000Z",
            "a.bz/20261127T035433Z.\(h2).wsp.gz",
            "b/20261127T035433Z.\(h2).wsp.gz", "c/20261127T035433Z.\(h2).wsp.gz",
            l.key(metric: long, time: 1_795_000_000, hash: h1), l.fullNameKey(long), ".wsp-store-id",
        ]
        var objects: [String: [UInt8]] = [:]
        for k in keys { objects[k] = Array(k.utf8) }
        objects[l.fullNameKey(long)] = Array(long.utf8)
        let mem = MemoryStore(objects)
        for k in keys { try fs.put(k, body: .bytes(objects[k]!)) }
        let asked = ["b", "a.b", "a.b.c", "a.bb", long]
        let batch = try StoreListing.metrics(asked, in: mem, layout: l)
        XCTAssertEqual(mem.calls.filter { $0 == "list" }.count, 2, "one range, and the long name on its own")
        XCTAssertEqual(Set(batch.keys), Set(asked.map { Array($0.utf8) }))
        for m in asked {
            let one = try StoreListing.metric(m, in: fs, layout: l)
            let got = try XCTUnwrap(batch[Array(m.utf8)])
            XCTAssertEqual(got.versions.map(\.key), one.versions.map(\.key), m)
            XCTAssertEqual(got.allKeys(layout: l), one.allKeys(layout: l), m)
            XCTAssertEqual(got.bad, one.bad, m)
        }
        XCTAssertEqual(batch[Array("a.b".utf8)]?.versions.count, 3)
        XCTAssertTrue(batch[Array("a.bb".utf8)]?.isEmpty == true)
        XCTAssertEqual(batch[Array(long.utf8)]?.versions.count, 1)
        // Stores that walk everything before a start (file://) list metric by metric.
        _ = try StoreListing.metrics(["b", "c"], in: fs, layout: l)
        XCTAssertFalse(fs.listsRanges)
    }

    /// `café` (U+00E9) and `cafe` + U+0301 are equal to Swift's ==, but two metrics: two
    /// directories in the store, two files on disk. A listing keeps them apart.
    func testCanonicallyEquivalentNamesAreTwoMetrics() throws {
        let nfc = "a.caf\u{e9}", nfd = "a.cafe\u{301}"
        XCTAssertEqual(nfc, nfd, "what Swift's == says")
        let l = StoreLayout(prefix: "")
        let h1 = String(repeating: "1", count: 64), h2 = String(repeating: "2", count: 64)
        let mem = MemoryStore([l.key(metric: nfc, time: 1_795_000_000, hash: h1): [1],
                               l.key(metric: nfd, time: 1_795_000_000, hash: h2): [2]])
        var seen: [(String, [String])] = []
        try StoreListing.forEachMetric(in: mem, layout: l, prefix: "") { seen.append(($0.metric, $0.versions.map(\.hash))) }
        XCTAssertEqual(seen.map { Array($0.0.utf8) }.sorted { $0.lexicographicallyPrecedes($1) },
                       [Array(nfd.utf8), Array(nfc.utf8)])
        XCTAssertEqual(seen.map(\.1.count), [1, 1])
        let batch = try StoreListing.metrics([nfc, nfd, "a.x"], in: mem, layout: l)
        XCTAssertEqual(batch[Array(nfc.utf8)]?.versions.map(\.hash), [h1])
        XCTAssertEqual(batch[Array(nfd.utf8)]?.versions.map(\.hash), [h2])
        XCTAssertEqual(try StoreListing.metric(nfd, in: mem, layout: l).versions.map(\.hash), [h2])
    }

    func testADeltaIsIntactOnlyWhileItsWholeChainIsListedAndNotBad() throws {
        let m = "a.b", h3 = String(repeating: "3", count: 64), h4 = String(repeating: "4", count: 64)
        let l = StoreLayout(prefix: "")
        let t = Timestamp.parse("2026-12-01T00:00:00Z")!
        let full = l.key(metric: m, time: t, hash: h1)
        let d1 = l.deltaKey(metric: m, time: t + 86400, hash: h2, base: VersionRef(time: t, hash: h1))
        let d2 = l.deltaKey(metric: m, time: t + 2 * 86400, hash: h3, base: VersionRef(time: t + 86400, hash: h2))
        let orphan = l.deltaKey(metric: m, time: t + 3 * 86400, hash: h4, base: VersionRef(time: t + 86400, hash: h4))
        let (s, _) = try store([full, d1, d2, orphan])
        var o = try StoreListing.metric(m, in: s, layout: l)
        XCTAssertEqual(o.versions.map(\.key), [full, d1, d2, orphan])
        XCTAssertEqual(o.versions.map(o.isIntact), [true, true, true, false])
        XCTAssertNil(o.newestGood, "the newest is a delta whose base is not in the store")
        o.bad[full] = l.badKey(full)
        XCTAssertEqual(o.versions.map(o.isIntact), [false, false, false, false], "a damaged base breaks every delta on it")
        o.bad = [:]
        o.versions.removeAll { $0.key == d1 }
        XCTAssertEqual(o.versions.map(o.isIntact), [true, false, false])
    }

    func testSpoolFileNames() {
        XCTAssertTrue(Spool.isSpoolFile("/var/tmp/wsp/1234.18446744073709551615.wsp.gz"))
        for p in ["/etc/passwd", "/x/1234.wsp.gz", "/x/a.1.wsp.gz", "/x/1.2.3.wsp.gz", "/x/1.2.wsp", "-", "/x/.wsp-tmp.1.2"] {
            XCTAssertFalse(Spool.isSpoolFile(p), p)
        }
    }
}
