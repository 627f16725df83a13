import Foundation
import XCTest
@testable import WhisperBackup

/// Delta versions read back: chains rebuilt byte for byte, broken chains refused with the
/// link named, and get, verify, the --full check, prune and purge over chains, on stores
/// built by hand in memory.
final class VersionChainTests: XCTestCase {
    let layout = StoreLayout(prefix: "node1/")
    let day: Int64 = 86400
    let t0: Int64 = 1_790_000_000
    var tmp = ""

    override func setUp() {
        tmp = NSTemporaryDirectory() + "version-chain-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        try? FileManager.default.createDirectory(atPath: tmp, withIntermediateDirectories: true)
    }

    override func tearDown() { try? FileManager.default.removeItem(atPath: tmp) }

    // MARK: building stores by hand

    /// A whisper file of one archive of `points` points with random values.
    func whisper(points: Int, seed: inout SystemRandomNumberGenerator) -> [UInt8] {
        var out = WhisperHeader(aggregation: .average, xFilesFactor: 0.5, archives: [(60, points)]).encoded()
        out += (0..<(points * 12)).map { _ in UInt8.random(in: 0...255, using: &seed) }
        return out
    }

    /// `file` with a few random bytes changed in `pages` random pages past the header.
    func touched(_ file: [UInt8], pages: Int, seed: inout SystemRandomNumberGenerator) -> [UInt8] {
        var f = file
        for _ in 0..<pages {
            let at = Int.random(in: 40..<f.count, using: &seed)
            f[at] ^= UInt8.random(in: 1...255, using: &seed)
        }
        return f
    }

    func sha(_ b: [UInt8]) -> String { Digest.sha256Hex(b) }

    /// The raw delta that turns `base` into `new`.
    func delta(from base: [UInt8], to new: [UInt8]) -> [UInt8] {
        let pages = PageDelta.changedPages(old: base.withUnsafeBytes { PageDelta.pageHashes($0) },
                                           new: new.withUnsafeBytes { PageDelta.pageHashes($0) })
        return new.withUnsafeBytes {
            PageDelta.encode(new: $0, baseSize: base.count, baseHash: Digest.hash(.sha256, base),
                             newHash: Digest.hash(.sha256, new), pages: pages)
        }
    }

    /// Writes `contents` of `metric` a day apart into `store`: full where `full` says so,
    /// else a delta against the version before. Returns the versions, oldest first.
    @discardableResult
    func writeChain(_ metric: String, _ contents: [[UInt8]], full: Set<Int> = [0], into store: MemoryStore) -> [StoredVersion] {
        var out: [StoredVersion] = []
        for (i, c) in contents.enumerated() {
            let time = t0 + Int64(i) * day
            var v = StoredVersion(metric: metric, time: time, hash: sha(c), key: "")
            if !full.contains(i), let b = out.last {
                v.base = b.ref
                v.key = layout.key(of: v)
                store.objects[v.key] = Gzip.compress(delta(from: contents[i - 1], to: c))
            } else {
                v.key = layout.key(of: v)
                store.objects[v.key] = Gzip.compress(c)
            }
            v.size = Int64(store.objects[v.key]!.count)
            out.append(v)
        }
        return out
    }

    /// Ten versions: random page changes, a resize (more points), a file replaced by another
    /// of the same size, and a full version in the middle.
    func tenVersions() -> [[UInt8]] {
        var rng = SystemRandomNumberGenerator()
        var c = [whisper(points: 3000, seed: &rng)]   // 36 KB: 9 pages
        for i in 1..<10 {
            switch i {
            case 4: c.append(whisper(points: 4000, seed: &rng))     // resized
            case 7: c.append(whisper(points: 4000, seed: &rng))     // replaced by another file
            default: c.append(touched(c[i - 1], pages: 3, seed: &rng))
            }
        }
        return c
    }

    func listing(_ metric: String, _ store: Store) throws -> MetricObjects {
        try StoreListing.metric(metric, in: store, layout: layout)
    }

    func materialize(_ v: StoredVersion, _ store: Store) throws -> [UInt8] {
        try VersionChain.materialize(v, objects: try listing(v.metric, store), store: store, layout: layout, scratch: tmp)
    }

    func chainError(_ body: @autoclosure () throws -> Any) -> ChainError? {
        do {
            _ = try body()
            XCTFail("no error")
        } catch let e as ChainError {
            return e
        } catch {
            XCTFail("not a chain error: \(error)")
        }
        return nil
    }

    /// No temp file of a rebuild is left in the scratch directory.
    func assertScratchEmpty(file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: tmp).filter { $0.hasPrefix(AtomicFile.tempPrefix) }, [],
                       file: file, line: line)
    }

    // MARK: VersionChain

    func testEveryVersionOfATenVersionChainRoundTrips() throws {
        let mem = MemoryStore()
        let contents = tenVersions()
        let versions = writeChain("a.b", contents, full: [0, 6], into: mem)
        XCTAssertEqual(versions.filter(\.isDelta).count, 8)
        for (v, c) in zip(versions, contents) {
            XCTAssertEqual(try materialize(v, mem), c, v.key)
        }
        assertScratchEmpty()
        // Oldest first through one chain: each object is downloaded once.
        let chain = VersionChain(objects: try listing("a.b", mem), store: mem, layout: layout, scratch: tmp)
        let gets = mem.calls.filter { $0 == "get" }.count
        for (v, c) in zip(versions, contents) { XCTAssertEqual(try chain.rebuild(v), c) }
        XCTAssertEqual(mem.calls.filter { $0 == "get" }.count - gets, 10)
    }

    func testAFileStoreChainIsReadInPlaceAndAnObjectGoneSinceTheListingIsNamed() throws {
        let mem = MemoryStore()
        let contents = Array(tenVersions().prefix(5))
        let versions = writeChain("a.b", contents, into: mem)
        let dir = tmp + "/store"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let store = FileStore(root: dir, location: "file://" + dir)
        for (key, bytes) in mem.objects { try store.put(key, body: .bytes(bytes)) }
        // No scratch directory at all: a download to a temp file could not even start.
        let nowhere = tmp + "/no-such-scratch"
        let chain = VersionChain(objects: try listing("a.b", store), store: store, layout: layout, scratch: nowhere)
        XCTAssertEqual(try chain.rebuild(versions[4]), contents[4])
        XCTAssertEqual(chain.bytesIn, versions.reduce(0) { $0 + $1.size })
        XCTAssertFalse(FileManager.default.fileExists(atPath: nowhere))
        // Deleted after the listing (a prune beside the restore): the link is named, as for
        // any store.
        let later = VersionChain(objects: try listing("a.b", store), store: store, layout: layout, scratch: nowhere)
        try FileManager.default.removeItem(atPath: dir + "/" + versions[2].key)
        let e = chainError(try later.rebuild(versions[4]))
        XCTAssertEqual(e?.kind, .broken)
        XCTAssertEqual(e?.description, "\(versions[4].key): its chain is broken: \(versions[2].key): not in the store when read")
    }

    func testAMissingDeltaBreaksEveryVersionAfterIt() throws {
        let mem = MemoryStore()
        let contents = tenVersions()
        let versions = writeChain("a.b", Array(contents.prefix(6)), into: mem)
        mem.objects[versions[3].key] = nil
        let e = chainError(try materialize(versions[5], mem))
        XCTAssertEqual(e?.kind, .broken)
        XCTAssertEqual(e?.link, "delta \(versions[4].key): its base \(versions[3].ref) is not in the store")
        XCTAssertEqual(e?.description, "\(versions[5].key): its chain is broken: delta \(versions[4].key): its base \(versions[3].ref) is not in the store")
        XCTAssertEqual(try materialize(versions[2], mem), contents[2])
        assertScratchEmpty()
    }

    func testADamagedBaseIsNamedAndNothingIsReturned() throws {
        let mem = MemoryStore()
        let versions = writeChain("a.b", Array(tenVersions().prefix(4)), into: mem)
        mem.objects[versions[0].key]![30] ^= 0xff
        let e = chainError(try materialize(versions[3], mem))
        XCTAssertEqual(e?.kind, .damaged)
        XCTAssertEqual(e?.key, versions[0].key)
        XCTAssertEqual(e?.dependent, versions[3].key)
        XCTAssert(e?.link.hasPrefix("\(versions[0].key): bad object") == true, "\(String(describing: e))")
        assertScratchEmpty()
    }

    func testADeltaStoredUnderAnotherBaseIsRefusedNamingBoth() throws {
        let mem = MemoryStore()
        let contents = Array(tenVersions().prefix(4))
        let versions = writeChain("a.b", contents, into: mem)
        // Version 3's delta (made against 2) renamed to name version 1 as its base.
        var moved = versions[3]
        moved.base = versions[1].ref
        moved.key = layout.key(of: moved)
        mem.objects[moved.key] = mem.objects.removeValue(forKey: versions[3].key)
        let e = chainError(try materialize(moved, mem))
        XCTAssertEqual(e?.kind, .damaged)
        XCTAssertEqual(e?.key, moved.key)
        XCTAssertEqual(e?.link, "delta \(moved.key): applied to \(versions[1].key), it wants a base of SHA-256 \(versions[2].hash), not \(versions[1].hash)")
    }

    func testADeltaThatProducesTheWrongContentIsRefusedNamingBoth() throws {
        let mem = MemoryStore()
        let contents = Array(tenVersions().prefix(3))
        let versions = writeChain("a.b", contents, into: mem)
        // Page data changed, header intact: a sound gzip of a wrong delta.
        var raw = try Gzip.decompressSingleMember(mem.objects[versions[2].key]!)!
        let header = try raw.withUnsafeBytes { try PageDelta.Header.parse($0) }
        raw[header.dataOffset] ^= 1
        mem.objects[versions[2].key] = Gzip.compress(raw)
        var wrong = contents[2]
        wrong[header.pages[0] * header.pageSize] ^= 1
        let e = chainError(try materialize(versions[2], mem))
        XCTAssertEqual(e?.kind, .damaged)
        XCTAssertEqual(e?.link, "delta \(versions[2].key): applied to \(versions[1].key), it produced SHA \(sha(wrong)), not \(versions[2].hash)")
    }

    func testABaseMarkedBadAndAnOverlongChainAreRefusedBeforeAnyDownload() throws {
        let mem = MemoryStore()
        let versions = writeChain("a.b", Array(tenVersions().prefix(3)), into: mem)
        mem.objects[layout.badKey(versions[1].key)] = []
        let e = chainError(try materialize(versions[2], mem))
        XCTAssertEqual(e?.link, "delta \(versions[2].key): its base \(versions[1].key) is marked bad")
        XCTAssertFalse(mem.calls.contains("get"))

        // 1001 deltas over a full version: refused from the keys alone.
        let long = MemoryStore()
        var v = StoredVersion(metric: "x", time: t0, hash: sha([0]), key: "")
        v.key = layout.key(of: v)
        long.objects[v.key] = []
        for i in 1...1001 {
            var d = StoredVersion(metric: "x", time: t0 + Int64(i), hash: sha([UInt8(i & 0xff), UInt8(i >> 8)]), key: "", base: v.ref)
            d.key = layout.key(of: d)
            long.objects[d.key] = []
            v = d
        }
        let l = chainError(try materialize(v, long))
        XCTAssert(l?.description.contains("its chain is longer than 1000 versions") == true, "\(String(describing: l))")
        XCTAssertFalse(long.calls.contains("get"))
    }

    // MARK: wsp-pull get

    func records(_ path: String) throws -> [[String]] {
        try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n")
            .map { $0.split(separator: "\t", omittingEmptySubsequences: false).map(String.init) }
    }

    func runGet(_ store: Store, _ versions: [StoredVersion], spool: Spool) throws -> (records: [[String]], error: Error?) {
        let out = tmp + "/out"
        let fd = try FileDescriptor.open(out, O_WRONLY | O_CREAT | O_TRUNC)
        var thrown: Error?
        do {
            try PullGet(store: store, layout: layout, spool: spool)
                .run(input: RecordInput(arguments: versions.map { $0.recordFields.joined(separator: "\t") }),
                     output: RecordWriter(fd: fd.rawValue), diagnostics: Diagnostics(tool: "test", progress: false, quiet: true))
        } catch { thrown = error }
        fd.close()
        return (try records(out), thrown)
    }

    func spoolFiles(_ spool: Spool) throws -> [String] {
        try FileManager.default.contentsOfDirectory(atPath: spool.dir).filter { !$0.hasPrefix(".") }
    }

    func testGetWritesEveryRebuiltVersionAsAFetchedRecord() throws {
        let mem = MemoryStore()
        let contents = tenVersions()
        let versions = writeChain("a.b", contents, full: [0, 6], into: mem)
        let spool = try Spool(dir: tmp + "/spool", maxBytes: 1 << 30, waitSeconds: 1)
        let r = try runGet(mem, versions, spool: spool)
        XCTAssertNil(r.error)
        XCTAssertEqual(r.records.count, 10)
        for ((rec, v), c) in zip(zip(r.records, versions), contents) {
            XCTAssertEqual(Array(rec.prefix(3)), [v.metric, v.timeText, v.hash])
            XCTAssertEqual(try Gzip.decompressFile(rec[3]), c, v.key)
        }
        // One listing for the metric's deltas; each object downloaded once, and each full
        // version once more as the start of its deltas' chain.
        XCTAssertEqual(mem.calls.filter { $0 == "list" }.count, 1)
        XCTAssertEqual(mem.calls.filter { $0 == "get" }.count, 12)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: spool.dir).filter { $0.hasPrefix(AtomicFile.tempPrefix) }, [])
    }

    func testGetOfABrokenChainFailsTheRecordAndSpoolsNothing() throws {
        let mem = MemoryStore()
        let versions = writeChain("a.b", Array(tenVersions().prefix(5)), into: mem)
        mem.objects[versions[2].key] = nil
        let spool = try Spool(dir: tmp + "/spool", maxBytes: 1 << 30, waitSeconds: 1)
        let r = try runGet(mem, [versions[4]], spool: spool)
        XCTAssert(r.error is RecordsFailed, "\(String(describing: r.error))")
        XCTAssertEqual(r.records.count, 0)
        XCTAssertEqual(try spoolFiles(spool), [])
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: spool.dir).filter { $0.hasPrefix(AtomicFile.tempPrefix) }, [])
    }

    func testGetRefusesADeltaKeyOfAnotherVersion() throws {
        var rec = Record(["a.b", Timestamp.format(t0 + 1), sha([1]),
                          layout.deltaKey(metric: "a.b", time: t0 + 2, hash: sha([1]), base: VersionRef(time: t0, hash: sha([0])))])
        XCTAssertThrowsError(try PullGet.version(from: rec, layout: layout))
        rec = Record(["a.b", Timestamp.format(t0 + 2), sha([1]), rec[3]!])
        XCTAssertEqual(try PullGet.version(from: rec, layout: layout).base, VersionRef(time: t0, hash: sha([0])))
    }

    // MARK: wsp-pull verify

    func runVerify(_ store: Store, spool: Spool) throws -> (records: [[String]], error: Error?) {
        let out = tmp + "/out"
        let fd = try FileDescriptor.open(out, O_WRONLY | O_CREAT | O_TRUNC)
        var thrown: Error?
        do {
            try PullVerify(store: store, layout: layout, spool: spool, before: nil, samplePercent: 100)
                .run(globs: [try MetricGlob("*")], input: nil, output: RecordWriter(fd: fd.rawValue),
                     diagnostics: Diagnostics(tool: "test", progress: false, quiet: true))
        } catch { thrown = error }
        fd.close()
        return (try records(out), thrown)
    }

    func testVerifyChecksWholeChainsDownloadingEachObjectOnce() throws {
        let mem = MemoryStore()
        writeChain("a.b", tenVersions(), full: [0, 6], into: mem)
        let spool = try Spool(dir: tmp + "/spool", maxBytes: 1 << 30, waitSeconds: 1)
        let r = try runVerify(mem, spool: spool)
        XCTAssertNil(r.error)
        XCTAssertEqual(r.records.map { $0.last! }, Array(repeating: "ok", count: 10))
        XCTAssertEqual(mem.calls.filter { $0 == "get" }.count, 10)
    }

    func testVerifyOfVersionRecordsFollowsTheirChain() throws {
        let mem = MemoryStore()
        let versions = writeChain("a.b", Array(tenVersions().prefix(5)), into: mem)
        mem.objects[versions[2].key]![20] ^= 0xff
        let spool = try Spool(dir: tmp + "/spool", maxBytes: 1 << 30, waitSeconds: 1)
        let out = tmp + "/out"
        let fd = try FileDescriptor.open(out, O_WRONLY | O_CREAT | O_TRUNC)
        XCTAssertThrowsError(try PullVerify(store: mem, layout: layout, spool: spool, before: nil, samplePercent: 100)
            .run(globs: [], input: RecordInput(arguments: versions.map { $0.recordFields.joined(separator: "\t") }),
                 output: RecordWriter(fd: fd.rawValue), diagnostics: Diagnostics(tool: "test", progress: false, quiet: true)))
        fd.close()
        XCTAssertEqual(try records(out).map { $0.last! }, ["ok", "ok", "bad", "bad", "bad"])
        XCTAssertEqual(mem.keys.filter { $0.hasSuffix(StoreLayout.badSuffix) }, [layout.badKey(versions[2].key)])
        XCTAssertEqual(mem.calls.filter { $0 == "list" }.count, 1)
    }

    func testVerifyMarksOnlyTheDamagedObjectAndReportsItsDependents() throws {
        let mem = MemoryStore()
        let versions = writeChain("a.b", Array(tenVersions().prefix(6)), into: mem)
        mem.objects[versions[3].key]![20] ^= 0xff   // delta 3's own object
        let spool = try Spool(dir: tmp + "/spool", maxBytes: 1 << 30, waitSeconds: 1)
        let r = try runVerify(mem, spool: spool)
        XCTAssert(r.error is RecordsFailed)
        XCTAssertEqual(r.records.map { $0.last! }, ["ok", "ok", "ok", "bad", "bad", "bad"])
        XCTAssertEqual(mem.keys.filter { $0.hasSuffix(StoreLayout.badSuffix) }, [layout.badKey(versions[3].key)])
        // Delta 3 was downloaded once: its dependents are reported from what was found.
        XCTAssertEqual(mem.calls.filter { $0 == "get" }.count, 4)
    }

    func testVerifyOfAMissingBaseMarksNothing() throws {
        let mem = MemoryStore()
        let versions = writeChain("a.b", Array(tenVersions().prefix(5)), into: mem)
        mem.objects[versions[1].key] = nil
        let spool = try Spool(dir: tmp + "/spool", maxBytes: 1 << 30, waitSeconds: 1)
        let r = try runVerify(mem, spool: spool)
        XCTAssert(r.error is RecordsFailed)
        XCTAssertEqual(r.records.map { $0.last! }, ["ok", "bad", "bad", "bad"])
        XCTAssertEqual(mem.keys.filter { $0.hasSuffix(StoreLayout.badSuffix) }, [])
    }

    // MARK: wsp-push --full

    func testTheFullCheckRebuildsADeltaNewest() throws {
        let mem = MemoryStore()
        let versions = writeChain("a.b", Array(tenVersions().prefix(4)), into: mem)
        let scratch = tmp + "/snap.wsp.gz"
        let push = Push(store: mem, layout: layout, dryRun: false)
        XCTAssertNil(try push.damage(versions[3], scratch: scratch))
        mem.objects[versions[1].key]![25] ^= 0xff
        let reason = try push.damage(versions[3], scratch: scratch)
        XCTAssert(reason?.contains("its chain is broken: delta \(versions[1].key): bad object") == true, "\(String(describing: reason))")
        assertScratchEmpty()
    }

    // MARK: wsp-prune

    func runPrune(_ store: Store, keep: Int) throws -> (records: [[String]], error: Error?) {
        let out = tmp + "/out"
        let fd = try FileDescriptor.open(out, O_WRONLY | O_CREAT | O_TRUNC)
        var thrown: Error?
        do {
            try Prune(store: store, layout: layout, keep: keep, dryRun: false)
                .run(input: nil, output: RecordWriter(fd: fd.rawValue), diagnostics: Diagnostics(tool: "test", progress: false, quiet: true))
        } catch { thrown = error }
        fd.close()
        return (try records(out), thrown)
    }

    /// Eight small versions: full 0, deltas 1-4, full 5, deltas 6-7.
    func eight(_ mem: MemoryStore, metric: String = "a.b") -> [StoredVersion] {
        var rng = SystemRandomNumberGenerator()
        var c = [whisper(points: 1000, seed: &rng)]
        for i in 1..<8 { c.append(touched(c[i - 1], pages: 1, seed: &rng)) }
        return writeChain(metric, c, full: [0, 5], into: mem)
    }

    func testPruneKeepsWhatTheKeptVersionsAreBuiltOn() throws {
        let mem = MemoryStore()
        let v = eight(mem)
        var r = try runPrune(mem, keep: 4)   // 4..7: 4 needs 3, 2, 1, 0
        XCTAssertNil(r.error)
        XCTAssertEqual(r.records.count, 0)
        XCTAssertEqual(mem.keys, v.map(\.key).sorted())
        r = try runPrune(mem, keep: 2)       // 6, 7 and their base 5
        XCTAssertNil(r.error)
        XCTAssertEqual(r.records.map { $0[3] }, v[0...4].map(\.key))
        XCTAssertEqual(mem.keys, v[5...7].map(\.key))
        // Dependents first: 4, then 3, 2, 1, 0.
        XCTAssertEqual(mem.deleteBatches, v[0...4].reversed().map { [$0.key] })
    }

    func testAFailedDeleteKeepsTheBasesOfTheDelta() throws {
        let mem = MemoryStore()
        let v = eight(mem)
        mem.objects[layout.badKey(v[3].key)] = []
        mem.undeletable = [v[2].key]
        let r = try runPrune(mem, keep: 1)   // 7 needs 6 and 5
        XCTAssert(r.error is RecordsFailed)
        XCTAssertEqual(r.records.map { $0[3] }, [v[3].key, v[4].key])
        XCTAssertEqual(mem.keys, ([v[0], v[1], v[2], v[5], v[6], v[7]]).map(\.key))
        // Every delta left has its base.
        let left = try listing("a.b", mem)
        for d in left.versions where d.isDelta { XCTAssert(left.versions.contains { $0.ref == d.base }, d.key) }
    }

    // MARK: wsp-prune --gone-after

    func testPurgeRemovesDeltasWithTheirMetric() throws {
        let mem = MemoryStore()
        let gone = eight(mem, metric: "gone")
        mem.objects[layout.badKey(gone[6].key)] = []
        let here = eight(mem, metric: "here")
        let hereKeys = mem.keys.filter { $0.hasPrefix(layout.metricPrefix("here")) }
        func purge(at time: Int64) throws -> [[String]] {
            let out = tmp + "/out"
            let fd = try FileDescriptor.open(out, O_WRONLY | O_CREAT | O_TRUNC)
            try Purge(store: mem, layout: layout, goneAfterDays: 0, now: time, maxShare: 1, force: false, dryRun: false, globs: [])
                .run(input: RecordInput(arguments: ["here\t/w/here.wsp"]), output: RecordWriter(fd: fd.rawValue),
                     diagnostics: Diagnostics(tool: "test", progress: false, quiet: true))
            fd.close()
            return try records(out)
        }
        XCTAssertEqual(try purge(at: t0 + 10 * day), [])      // marks it
        let out = try purge(at: t0 + 10 * day + 1)
        XCTAssertEqual(out.map { $0[3] }, gone.map(\.key))
        XCTAssertEqual(Set(out.map { $0.last! }), ["purged"])
        XCTAssertEqual(mem.keys, hereKeys)
        XCTAssertEqual(here.count, 8)
    }
}
