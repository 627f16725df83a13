/// What a backfill writes: points for slots of the target that are empty, each with the
/// timestamp the slot held when planned (the slot is still empty while it holds it).
public struct FillPlan: Sendable {
    public struct Write: Sendable, Equatable {
        public var archive: Int
        public var slot: Int
        /// Byte offset of the slot in the file.
        public var offset: Int
        public var point: WhisperPoint
        /// The timestamp stored in the slot when it was planned.
        public var previous: UInt32
    }

    /// In archive order, and within an archive in slot order (so the first slot, which
    /// anchors the ring, is written before the others).
    public var writes: [Write] = []
    /// For each archive written to, the timestamp in its first slot (its base) when planned.
    public var bases: [Int: UInt32] = [:]

    public init() {}

    public var count: Int { writes.count }
    public var isEmpty: Bool { writes.isEmpty }

    /// Ranges of `writes` whose slots follow each other in one archive: one `pwrite` each.
    /// (The last slot of an archive and the first of the next are neighbours in the file,
    /// but the first slot anchors its ring and is checked on its own.)
    public func runs() -> [Range<Int>] {
        var out: [Range<Int>] = []
        var start = 0
        var i = 1
        while i < writes.count {
            if writes[i].archive != writes[i - 1].archive || writes[i].slot != writes[i - 1].slot + 1 {
                out.append(start..<i)
                start = i
            }
            i += 1
        }
        if !writes.isEmpty { out.append(start..<writes.count) }
        return out
    }
}

/// Backfill semantics: which empty slots of an existing target file take which points from a
/// source file (a backup of the same metric), without changing anything the target holds.
///
/// For each archive of the target, over the intervals it retains at `now` (the newest one
/// holding `now` and the `points - 1` before it):
/// - a slot is empty when the timestamp stored in it is not the interval it stands for; a
///   slot holding a later lap of the ring (data newer than `now`) is not empty;
/// - an empty slot takes the source's point for that interval from the source archive of the
///   same step, if that archive covers the interval (the archive's retention before the
///   source's newest point, which stands for the time the backup was taken), gap or not;
/// - otherwise from the finest source archive whose step divides the target's and that
///   covers the interval's start: the interval's finer points aggregated with the target's
///   method and xFilesFactor, as whisper would have propagated them;
/// - coarser source data never fills a finer slot; no existing point (zeros included) is
///   written, and nothing is re-propagated over existing points.
///
/// An archive whose first slot is 0 is empty as whisper sees it. If other slots hold points
/// anyway (the first slot was lost), their addressing is kept and the first slot is filled
/// only from the interval that belongs there (or nothing is written to that archive);
/// otherwise the oldest point written becomes the archive's base, as in whisper's
/// `update_many`.
public enum WhisperFill {
    /// Plans a backfill of `target` from `source` (whole files, headers already validated).
    public static func plan(source: UnsafeRawBufferPointer, sourceHeader: WhisperHeader,
                            target: UnsafeRawBufferPointer, targetHeader: WhisperHeader,
                            now: Int) -> FillPlan {
        // Every archive of the source, those without points too: within its span an empty
        // archive is still the authority at its resolution (it has gaps only).
        var sources: [SourceArchive] = []
        for info in sourceHeader.archives {
            let archive = WhisperArchive(info, in: source)
            let base = archive.addressingBase
            let span = base.flatMap { archive.span(base: $0) }
            sources.append(SourceArchive(archive: archive, base: span == nil ? 0 : base!,
                                         oldest: span?.oldest ?? Int.max, newest: span?.newest ?? Int.min, latest: 0))
        }
        // The backup's own "now" is not recorded; its newest point stands for it.
        guard let latest = sources.map(\.newest).max(), latest > 0 else { return FillPlan() }
        for i in sources.indices { sources[i].latest = latest }
        var plan = FillPlan()
        var index = 0
        while index < targetHeader.archives.count {
            let info = targetHeader.archives[index]
            let lookup = SourceLookup(sources: sources, step: info.secondsPerPoint,
                                      method: targetHeader.aggregation, xFilesFactor: targetHeader.xFilesFactor)
            if !lookup.isEmpty {
                let archive = WhisperArchive(info, in: target)
                let before = plan.writes.count
                planArchive(index, archive, lookup, now: now, into: &plan.writes)
                if plan.writes.count > before { plan.bases[index] = UInt32(archive.base) }
            }
            index += 1
        }
        return plan
    }

    /// Plans a backfill between two whole files held in memory; throws if either is not
    /// valid whisper.
    public static func plan(source: [UInt8], target: [UInt8], now: Int) throws -> FillPlan {
        let sh = try WhisperHeader(source)
        let th = try WhisperHeader(target)
        return source.withUnsafeBytes { s in
            target.withUnsafeBytes { t in plan(source: s, sourceHeader: sh, target: t, targetHeader: th, now: now) }
        }
    }

    static func planArchive(_ index: Int, _ archive: WhisperArchive, _ lookup: SourceLookup,
                            now: Int, into writes: inout [FillPlan.Write]) {
        let info = archive.info
        let step = info.secondsPerPoint
        let period = info.retention
        let newest = info.interval(now)
        // Timestamp 0 marks an empty slot, so the first storable interval is `step`.
        let oldest = max(newest - (info.points - 1) * step, step)
        guard newest >= oldest, newest <= Int(UInt32.max) else { return }
        // Only the intervals the source has data for can take a point.
        let from = max(oldest, info.interval(lookup.oldest))
        let through = min(newest, lookup.newest)
        guard from <= through else { return }

        var base = archive.base
        if base == 0 {
            if let phase = archive.addressingBase {
                // The first slot was lost: refill it from the interval that belongs there, or
                // leave the archive alone (points written elsewhere would stay unreadable).
                let first = newest - Whisper.mod(newest - phase, period)
                guard first >= oldest, lookup.value(at: first) != nil else { return }
                base = first
            } else {
                var t = from
                while t <= through, lookup.value(at: t) == nil { t += step }
                if t > through { return }
                base = t
            }
        }

        let start = writes.count
        var t = from
        while t <= through {
            let slot = info.slot(of: t, base: base)
            let stored = archive.timestamp(atSlot: slot)
            if stored != t && !(stored > t && (stored - t) % period == 0), let value = lookup.value(at: t) {
                writes.append(FillPlan.Write(archive: index, slot: slot, offset: info.offset(ofSlot: slot),
                                             point: WhisperPoint(timestamp: UInt32(t), value: value),
                                             previous: UInt32(stored)))
            }
            t += step
        }
        // Intervals in time order wrap around the ring at most once; put them in slot order.
        var wrap = start + 1
        while wrap < writes.count && writes[wrap].slot > writes[wrap - 1].slot { wrap += 1 }
        if wrap < writes.count {
            writes.replaceSubrange(start..., with: Array(writes[wrap...] + writes[start..<wrap]))
        }
    }
}

/// A source archive that holds points, and the span it covers: the retention before the
/// source's newest point (the latest of all its archives), as when the backup was taken.
/// Within that span the archive is the authority at its resolution, gaps included.
struct SourceArchive {
    let archive: WhisperArchive
    /// Anchors the ring (the base, or the addressing inferred when the first slot is empty);
    /// 0 when the archive holds no point.
    let base: Int
    /// The oldest and newest points this archive holds.
    let oldest: Int
    let newest: Int
    /// The newest point of the whole source file.
    var latest: Int

    var step: Int { archive.info.secondsPerPoint }

    /// The oldest interval it covers that holds a point.
    var firstCovered: Int { max(oldest, latest - archive.info.retention + 1) }

    @inline(__always)
    func covers(_ t: Int) -> Bool { t <= latest && t > latest - archive.info.retention }

    @inline(__always)
    func value(at t: Int) -> Double? { base == 0 ? nil : archive.value(at: t, base: base) }
}

/// Where the value of one target interval comes from: the source archive of the same step,
/// else the finest finer one, aggregated.
struct SourceLookup {
    let same: SourceArchive?
    let finer: [SourceArchive]
    let step: Int
    let method: AggregationMethod
    let xFilesFactor: Float
    /// The oldest and newest times any of those archives holds a point for.
    let oldest: Int
    let newest: Int

    init(sources: [SourceArchive], step: Int, method: AggregationMethod, xFilesFactor: Float) {
        same = sources.first { $0.step == step }
        finer = sources.filter { $0.step < step && step % $0.step == 0 }.sorted { $0.step < $1.step }
        self.step = step
        self.method = method
        self.xFilesFactor = xFilesFactor
        let all = (same.map { [$0] } ?? []) + finer
        oldest = all.map(\.firstCovered).min() ?? Int.max
        newest = all.map(\.newest).max() ?? Int.min
    }

    var isEmpty: Bool { same == nil && finer.isEmpty }

    /// The source's value for target interval `t`, or nil.
    func value(at t: Int) -> Double? {
        if let same, same.covers(t) { return same.value(at: t) }
        var i = 0
        while i < finer.count {
            let source = finer[i]
            i += 1
            if !source.covers(t) { continue }
            var aggregator = Aggregator(method)
            var u = t
            let end = t + step
            while u < end {
                aggregator.add(source.value(at: u))
                u += source.step
            }
            return aggregator.result(xFilesFactor: xFilesFactor)
        }
        return nil
    }
}
