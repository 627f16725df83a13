import XCTest
#if canImport(Glibc)
import Glibc
#endif
@testable import WhisperBackup

/// Backfill semantics (`WhisperFill`) on files built in memory.
final class FillTests: XCTestCase {
    let now = 1_795_000_000   // 1_795_000_000 % 60 == 40, % 600 == 400

    func file(_ archives: [(Int, Int)], _ method: AggregationMethod = .average, xff: Float = 0.5) -> WhisperFile {
        WhisperFile(header: WhisperHeader(aggregation: method, xFilesFactor: xff, archives: archives.map { (secondsPerPoint: $0.0, points: $0.1) }))
    }

    /// Stores `count` points ending at the newest interval before `now` into `archive`,
    /// oldest first (so the oldest is the base), with values from `value`.
    func fill(_ f: inout WhisperFile, archive: Int, count: Int, value: (Int) -> Double = { Double($0 % 1000) + 0.5 }) {
        let info = f.header.archives[archive]
        let newest = info.interval(now)
        for i in (0..<count).reversed() {
            let t = newest - i * info.secondsPerPoint
            f.store(archive: archive, timestamp: t, value: value(t))
        }
    }

    func plan(_ source: WhisperFile, _ target: WhisperFile, now: Int? = nil) throws -> FillPlan {
        try WhisperFill.plan(source: source.bytes, target: target.bytes, now: now ?? self.now)
    }

    func clear(_ f: inout WhisperFile, archive: Int, at t: Int) {
        let info = f.header.archives[archive]
        let base = f.withArchive(archive) { $0.base }
        f.store(archive: archive, slot: info.slot(of: t, base: base), point: WhisperPoint(timestamp: 0, value: 0))
    }

    func testIdenticalFilesNeedNoWrite() throws {
        var f = file([(60, 100), (600, 50)])
        fill(&f, archive: 0, count: 100)
        fill(&f, archive: 1, count: 30)
        XCTAssertTrue(try plan(f, f).isEmpty)
    }

    func testOnlyEmptySlotsAreWrittenAndZerosAreNotGaps() throws {
        var source = file([(60, 100)])
        fill(&source, archive: 0, count: 100)
        var target = source
        let newest = 1_794_999_960
        clear(&target, archive: 0, at: newest - 60 * 10)
        clear(&target, archive: 0, at: newest - 60 * 11)
        target.store(archive: 0, timestamp: newest - 60 * 20, value: 0)        // a real zero
        target.store(archive: 0, timestamp: newest - 60 * 30, value: -1)       // a different value
        let p = try plan(source, target)
        XCTAssertEqual(p.writes.map(\.point.timestamp), [UInt32(newest - 60 * 11), UInt32(newest - 60 * 10)])
        XCTAssertEqual(p.writes.map(\.previous), [0, 0])
        XCTAssertEqual(p.runs(), [0..<2])
        target.apply(p)
        XCTAssertEqual(target.value(archive: 0, at: newest - 600), source.value(archive: 0, at: newest - 600))
        XCTAssertEqual(target.value(archive: 0, at: newest - 1200), 0)
        XCTAssertEqual(target.value(archive: 0, at: newest - 1800), -1)
        XCTAssertTrue(try plan(source, target).isEmpty)
    }

    func testStaleLapsAreGapsButNewerLapsAndOldPointsAreKept() throws {
        var source = file([(60, 10)])
        fill(&source, archive: 0, count: 10)
        let newest = 1_794_999_960
        var target = source
        // Slot of newest-2m holds the previous lap (10 slots earlier): a gap.
        let stale = newest - 120 - 600
        target.store(archive: 0, slot: source.header.archives[0].slot(of: stale, base: source.withArchive(0) { $0.base }),
                     point: WhisperPoint(timestamp: UInt32(stale), value: 99))
        XCTAssertEqual(try plan(source, target).writes.map(\.point.timestamp), [UInt32(newest - 120)])
        // Planned 10 minutes earlier, every slot of the target holds a later lap: nothing to write.
        XCTAssertEqual(try plan(source, target, now: now - 600).count, 0)
        // Planned 5 minutes later, the 5 oldest source points are beyond retention.
        var empty = file([(60, 10)])
        empty.store(archive: 0, timestamp: newest + 300, value: 1)
        let later = try plan(source, empty, now: now + 300)
        XCTAssertEqual(later.writes.map(\.point.timestamp), (0..<5).map { UInt32(newest - 240 + 60 * $0) })
    }

    func testCoarserDataNeverFillsFinerSlots() throws {
        var source = file([(60, 100), (600, 100)])
        fill(&source, archive: 0, count: 100)
        fill(&source, archive: 1, count: 100)
        let target = file([(10, 1000), (600, 100)])    // 10 s archive: nothing in the source is that fine
        let p = try plan(source, target)
        XCTAssertEqual(Set(p.writes.map(\.archive)), [1])
        XCTAssertEqual(p.count, 100)
    }

    func testFinerDataIsAggregatedWithTheTargetsMethodAndFactor() throws {
        var source = file([(60, 60)], .average)
        fill(&source, archive: 0, count: 60, value: { Double($0 / 60 % 7) })
        clear(&source, archive: 0, at: 1_794_999_960 - 60 * 15)   // one of ten missing in one interval
        var target = file([(60, 60), (600, 10)], .sum, xff: 0.95)
        fill(&target, archive: 0, count: 60, value: { _ in 1 })
        var p = try plan(source, target)
        // 600 s intervals inside the source's hour: 1794996600...1794999600; the newest holds
        // 7 known of 10 and the one with the gap (1794999000) 9 of 10, both below 0.95.
        func sum(_ t: Int, _ minutes: [Int]) -> Double {
            var total = 0.0
            for k in minutes { total += Double((t + 60 * k) / 60 % 7) }
            return total
        }
        var expected: [Int: Double] = [:]
        for t in stride(from: 1_794_996_600, through: 1_794_999_000, by: 600) { expected[t] = sum(t, Array(0..<10)) }
        XCTAssertEqual(p.writes.allSatisfy { $0.archive == 1 }, true)
        let got = Dictionary(uniqueKeysWithValues: p.writes.map { (Int($0.point.timestamp), $0.point.value) })
        XCTAssertEqual(Set(got.keys), Set(expected.keys).subtracting([1_794_999_000]))
        for (t, v) in got { XCTAssertEqual(v, expected[t]) }
        // With xFilesFactor 0 the partial intervals come too, summed over what is known.
        target = file([(60, 60), (600, 10)], .sum, xff: 0)
        fill(&target, archive: 0, count: 60)
        p = try plan(source, target)
        XCTAssertEqual(p.count, 6)
        let partial = p.writes.first { $0.point.timestamp == 1_794_999_000 }!.point.value
        XCTAssertEqual(partial, sum(1_794_999_000, [0] + Array(2..<10)))
        let newest = p.writes.first { $0.point.timestamp == 1_794_999_600 }!.point.value
        XCTAssertEqual(newest, sum(1_794_999_600, Array(0..<7)))
    }

    func testSameResolutionArchiveIsTheAuthorityWhereItCovers() throws {
        var source = file([(60, 600), (600, 100)], .max, xff: 0)
        fill(&source, archive: 0, count: 600)
        fill(&source, archive: 1, count: 100, value: { _ in 42 })
        clear(&source, archive: 1, at: 1_794_999_600 - 6000)   // a gap the finer archive could fill
        let target = file([(600, 100)], .max, xff: 0)
        let p = try plan(source, target)
        XCTAssertEqual(p.count, 99)
        XCTAssertTrue(p.writes.allSatisfy { $0.point.value == 42 })
    }

    func testFinestCoveringArchiveIsUsedForEachInterval() throws {
        // 10 s for the last 10 minutes, 60 s for the last 100; target 300 s, no 300 s source.
        var source = file([(10, 60), (60, 100)], .average, xff: 0)
        fill(&source, archive: 0, count: 60, value: { _ in 1 })
        fill(&source, archive: 1, count: 100, value: { _ in 2 })
        let target = file([(300, 20)], .average, xff: 0)
        let p = try plan(source, target)
        let byTime = Dictionary(uniqueKeysWithValues: p.writes.map { (Int($0.point.timestamp), $0.point.value) })
        // The 10 s archive covers 1794999410...1795000000 (its newest point): the intervals
        // from 1794999600 on come from it; the one at 1794999300 starts before its span.
        XCTAssertEqual(byTime[1_794_999_900], 1)
        XCTAssertEqual(byTime[1_794_999_600], 1)
        XCTAssertEqual(byTime[1_794_999_300], 2)
        XCTAssertEqual(byTime.count, 20)
    }

    func testAnEmptyTargetArchiveTakesTheOldestPointAsItsBase() throws {
        var source = file([(60, 100)])
        fill(&source, archive: 0, count: 40)
        let target = file([(60, 100)])
        let p = try plan(source, target)
        XCTAssertEqual(p.count, 40)
        XCTAssertEqual(p.writes.first?.slot, 0)
        XCTAssertEqual(p.writes.first.map { Int($0.point.timestamp) }, 1_794_999_960 - 39 * 60)
        XCTAssertEqual(p.runs().count, 1)
        var t = target
        t.apply(p)
        XCTAssertEqual(t.bytes, source.bytes)
    }

    func testALostFirstSlotIsRefilledKeepingTheRingsAddressing() throws {
        var source = file([(60, 10)])
        fill(&source, archive: 0, count: 25)    // has wrapped: the base is not the oldest point
        var target = source
        target.store(archive: 0, slot: 0, point: WhisperPoint(timestamp: 0, value: 0))
        XCTAssertTrue(target.withArchive(0) { $0.isEmpty })
        var p = try plan(source, target)
        XCTAssertEqual(p.writes.map(\.slot), [0])
        target.apply(p)
        XCTAssertEqual(target.bytes, source.bytes)
        // Without the first slot's interval in the source, the archive is left alone.
        var partial = source
        let base = source.withArchive(0) { $0.base }
        partial.store(archive: 0, slot: 0, point: WhisperPoint(timestamp: UInt32(base - 600), value: 1))
        var damaged = source
        damaged.store(archive: 0, slot: 0, point: WhisperPoint(timestamp: 0, value: 0))
        damaged.store(archive: 0, slot: 3, point: WhisperPoint(timestamp: 0, value: 0))
        p = try plan(partial, damaged)
        XCTAssertTrue(p.isEmpty)
    }

    func testRunsFollowSlotsAndArchives() throws {
        var source = file([(60, 10), (600, 10)], .last, xff: 0)
        fill(&source, archive: 0, count: 10)
        fill(&source, archive: 1, count: 10)
        var target = source
        for k in [0, 1, 2, 5, 9] { clear(&target, archive: 0, at: 1_794_999_960 - 60 * k) }
        clear(&target, archive: 1, at: 1_794_999_600)
        let p = try plan(source, target)
        XCTAssertEqual(p.count, 6)
        // Slots 0 (the base, lost and refilled), 4, 7-9 of the first archive; 9 of the second.
        XCTAssertEqual(p.runs().map(\.count), [1, 1, 3, 1])
        XCTAssertEqual(p.writes.map(\.slot), [0, 4, 7, 8, 9, 9])
        XCTAssertEqual(p.writes.map(\.archive), [0, 0, 0, 0, 0, 1])
        for r in p.runs() {
            for i in r.dropFirst() { XCTAssertEqual(p.writes[i].offset, p.writes[i - 1].offset + 12) }
        }
        var t = target
        t.apply(p)
        XCTAssertEqual(t.bytes, source.bytes)
    }

    func testRunsNeverCrossArchivesEvenWhereTheyTouchInTheFile() throws {
        var source = file([(60, 10), (600, 10)], .last, xff: 0)
        fill(&source, archive: 0, count: 10)
        fill(&source, archive: 1, count: 10)
        var target = source
        // The last slot of archive 0 and the first of archive 1 sit side by side in the file.
        target.store(archive: 0, slot: 9, point: WhisperPoint(timestamp: 0, value: 0))
        target.store(archive: 1, slot: 0, point: WhisperPoint(timestamp: 0, value: 0))
        let p = try plan(source, target)
        XCTAssertEqual(p.writes[1].offset, p.writes[0].offset + 12)
        XCTAssertEqual(p.runs(), [0..<1, 1..<2])
        XCTAssertEqual(p.bases, [0: UInt32(1_794_999_960 - 540), 1: 0])
    }

    /// The two-pass write on a real file: values first, then timestamps, each run checked
    /// again before it is written.
    func testWritingAPlanToAFileRestoresTheSourceAndSkipsSlotsThatGotAPoint() throws {
        var source = file([(60, 100), (600, 100)], .sum, xff: 0)
        fill(&source, archive: 0, count: 100)
        fill(&source, archive: 1, count: 100)
        var target = source
        for slot in [0, 1, 2, 50, 99] {
            target.store(archive: 0, slot: slot, point: WhisperPoint(timestamp: 0, value: 0))
            target.store(archive: 1, slot: slot, point: WhisperPoint(timestamp: 0, value: 0))
        }
        let p = try plan(source, target)
        XCTAssertEqual(p.count, 10)
        let path = "/tmp/wsp-filltest-\(system_getpid()).wsp"
        defer { _ = try? system_unlink(path) }
        // A writer that does not lock puts a point into slot 50 of archive 0 after the plan.
        var raced = target
        raced.store(archive: 0, slot: 50, point: WhisperPoint(timestamp: UInt32(source.withArchive(0) { $0.timestamp(atSlot: 50) }), value: 7))
        try AtomicFile.write(path, bytes: raced.bytes, placement: .replace)
        let fd = try FileDescriptor.open(path, O_RDWR)
        let written = try fd.closeAfter { try MergeBatch.write(p, to: fd) }
        XCTAssertEqual(written, 9)
        let rd = try FileDescriptor.open(path, O_RDONLY)
        let back = try WhisperFile(bytes: try rd.closeAfter { try rd.readAll(sizeHint: raced.bytes.count) })
        var expected = source
        expected.store(archive: 0, slot: 50, point: raced.withArchive(0) { $0.point(atSlot: 50) })
        XCTAssertEqual(back.bytes, expected.bytes)
    }
}
