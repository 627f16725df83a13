import Foundation
import XCTest
@testable import WhisperBackup

/// Prune and Purge over an in-memory store: what they delete, keep, mark and report, in
/// milliseconds (the end-to-end tests run the same against real stores).
final class PipelineStepTests: XCTestCase {
    let layout = StoreLayout(prefix: "node1/")
    let day: Int64 = 86400
    let now: Int64 = 1_795_000_000
    var outPath = ""

    override func setUp() {
        outPath = NSTemporaryDirectory() + "pipeline-step-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
    }

    override func tearDown() { try? FileManager.default.removeItem(atPath: outPath) }

    func hash(_ i: Int) -> String { String(repeating: String(i % 10), count: 64) }

    /// A store holding `versions` versions, a day apart, of each metric.
    func store(_ metrics: [String], versions: Int) -> MemoryStore {
        let mem = MemoryStore()
        for m in metrics {
            for v in 0..<versions { mem.objects[layout.key(metric: m, time: now - Int64(versions - v) * day, hash: hash(v))] = [UInt8(v)] }
        }
        return mem
    }

    /// Runs `body` with a record writer, and returns the records it wrote and what it threw.
    func run(_ body: (RecordWriter, Diagnostics) throws -> Void) throws -> (records: [[String]], error: Error?) {
        let fd = try FileDescriptor.open(outPath, O_WRONLY | O_CREAT | O_TRUNC)
        var thrown: Error?
        do { try body(RecordWriter(fd: fd.rawValue), Diagnostics(tool: "test", progress: false, quiet: true)) } catch { thrown = error }
        fd.close()
        let text = try String(contentsOfFile: outPath, encoding: .utf8)
        return (text.split(separator: "\n").map { $0.split(separator: "\t", omittingEmptySubsequences: false).map(String.init) }, thrown)
    }

    func prune(_ store: Store, keep: Int, dryRun: Bool = false) throws -> [[String]] {
        let r = try run { try Prune(store: store, layout: layout, keep: keep, dryRun: dryRun).run(input: nil, output: $0, diagnostics: $1) }
        if let e = r.error { throw e }
        return r.records
    }

    func testPruneKeepsTheNewestVersions() throws {
        let mem = store(["a.b", "c"], versions: 5)
        let before = mem.keys
        let out = try prune(mem, keep: 2)
        XCTAssertEqual(out.map { $0.last! }, Array(repeating: "deleted", count: 6))
        XCTAssertEqual(Set(out.map { $0[3] }), Set(before).subtracting(mem.keys))
        // The two newest of each metric stay.
        XCTAssertEqual(mem.keys, [before[3], before[4], before[8], before[9]])
    }

    func testPruneDryRunThroughTheWrapperDeletesNothing() throws {
        let mem = store(["a.b"], versions: 4)
        let before = mem.keys
        var settings = StoreSettings()
        settings.retries = 0
        settings.dryRun = true
        let out = try prune(try StoreRegistry.wrap(mem, settings: settings), keep: 1, dryRun: true)
        XCTAssertEqual(out.map { $0.last! }, ["would-delete", "would-delete", "would-delete"])
        XCTAssertEqual(mem.keys, before)
        XCTAssertFalse(mem.calls.contains("delete"))
    }

    func purge(_ store: Store, onDisk: [String], goneAfter: Int = 7, at time: Int64, maxShare: Double = 0.5,
               dryRun: Bool = false) throws -> (records: [[String]], error: Error?) {
        try run {
            try Purge(store: store, layout: layout, goneAfterDays: goneAfter, now: time, maxShare: maxShare, force: false,
                      dryRun: dryRun, globs: []).run(input: RecordInput(arguments: onDisk.map { $0 + "\t/w/x.wsp" }), output: $0, diagnostics: $1)
        }
    }

    func testPurgeMarksFirstAndDeletesOnlyAfterTheWait() throws {
        let mem = store(["gone", "here1", "here2"], versions: 2)
        // First run: the missing metric gets a marker, nothing is deleted.
        var r = try purge(mem, onDisk: ["here1", "here2"], at: now)
        XCTAssertNil(r.error)
        XCTAssertEqual(r.records.count, 0)
        XCTAssertTrue(mem.keys.contains(layout.markerKey(metric: "gone", time: now)))
        // Within the wait: still kept.
        r = try purge(mem, onDisk: ["here1", "here2"], at: now + 6 * day)
        XCTAssertEqual(r.records.count, 0)
        XCTAssertEqual(mem.keys.filter { $0.hasPrefix(layout.metricPrefix("gone")) }.count, 3)
        // After it: its versions and marker go, the others stay.
        r = try purge(mem, onDisk: ["here1", "here2"], at: now + 7 * day)
        XCTAssertEqual(r.records.map { $0.last! }, ["purged", "purged"])
        XCTAssertEqual(mem.keys.filter { $0.hasPrefix(layout.metricPrefix("gone")) }, [])
        XCTAssertEqual(mem.keys.count, 4)
    }

    func testPurgeRefusesToRemoveMostOfTheStore() throws {
        let mem = store(["a", "b", "c"], versions: 1)
        _ = try purge(mem, onDisk: [], goneAfter: 0, at: now)   // marks all three
        let before = mem.keys
        let r = try purge(mem, onDisk: [], goneAfter: 0, at: now + 1)
        XCTAssertTrue(r.error is PurgeRefused, "\(String(describing: r.error))")
        XCTAssertEqual(mem.keys, before)
    }

    func testPurgeDryRunThroughTheWrapperChangesNothing() throws {
        let mem = store(["gone", "here"], versions: 1)
        var settings = StoreSettings()
        settings.retries = 0
        settings.dryRun = true
        let dry = try StoreRegistry.wrap(mem, settings: settings)
        let before = mem.keys
        _ = try purge(dry, onDisk: ["here"], goneAfter: 0, at: now, maxShare: 1, dryRun: true)
        XCTAssertEqual(mem.keys, before)
        XCTAssertFalse(mem.calls.contains("put") || mem.calls.contains("delete"))
    }
}
