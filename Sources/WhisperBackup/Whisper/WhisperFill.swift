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

    /// Ranges of `writes` whose slots follow each other in the file: one `pwrite` each.
    public func runs() -> [Range<Int>] {
        var out: [Range<Int>] = []
        var start = 0
        for i in writes.indices.dropFirst() where writes[i].offset != writes[i - 1].offset + WhisperHeader.pointSize {
            out.append(start..<i)
            start = i
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
///   same step, if that archive covers the interval (its newest point and the retention
///   before it), gap or not;
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
        let sources = sourceHeader.archives.compactMap { info -> SourceArchive? in
            let archive = WhisperArchive(info, in: source)
            guard let newest = archive.newestTimestamp() else { return nil }
            return SourceArchive(archive: archive, newest: newest)
        }
        var plan = FillPlan()
        for (index, info) in targetHeader.archives.enumerated() {
            let lookup = SourceLookup(sources: sources, step: info.secondsPerPoint,
                                      method: targetHeader.aggregation, xFilesFactor: targetHeader.xFilesFactor)
            if lookup.isEmpty { continue }
            let archive = WhisperArchive(info, in: target)
            let before = plan.writes.count
            planArchive(index, archive, lookup, now: now, into: &plan.writes)
            if plan.writes.count > before { plan.bases[index] = UInt32(archive.base) }
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

        var base = archive.base
        if base == 0 {
            if let phase = inferPhase(archive) {
                let first = newest - Whisper.mod(newest - phase, period)
                guard first >= oldest, lookup.value(at: first) != nil else { return }
                base = first
            } else {
                var t = oldest
                while t <= newest, lookup.value(at: t) == nil { t += step }
                if t > newest { return }
                base = t
            }
        }

        let start = writes.count
        var t = oldest
        while t <= newest {
            let slot = info.slot(of: t, base: base)
            let stored = archive.timestamp(atSlot: slot)
            if stored != t && !(stored > t && (stored - t) % period == 0), let value = lookup.value(at: t) {
                writes.append(FillPlan.Write(archive: index, slot: slot, offset: info.offset(ofSlot: slot),
                                             point: WhisperPoint(timestamp: UInt32(t), value: value),
                                             previous: UInt32(stored)))
            }
            t += step
        }
        // Intervals in time order wrap around the ring once; put them in slot order.
        if writes.count > start + 1, let wrap = (start + 1..<writes.count).first(where: { writes[$0].slot < writes[$0 - 1].slot }) {
            writes.replaceSubrange(start..., with: Array(writes[wrap...] + writes[start..<wrap]))
        }
    }

    /// The addressing (base modulo the ring's period) that the points of an archive with no
    /// base agree on most, or nil when it holds none.
    static func inferPhase(_ archive: WhisperArchive) -> Int? {
        let step = archive.info.secondsPerPoint
        let period = archive.info.retention
        var votes: [Int: Int] = [:]
        for slot in 1..<archive.info.points {
            let t = archive.timestamp(atSlot: slot)
            if t == 0 || t % step != 0 { continue }
            votes[Whisper.mod(t - slot * step, period), default: 0] += 1
        }
        return votes.max { $0.value < $1.value || ($0.value == $1.value && $0.key > $1.key) }?.key
    }
}

/// A source archive that holds points, with the span it covers: its newest point and the
/// retention before it.
struct SourceArchive {
    let archive: WhisperArchive
    let newest: Int

    var step: Int { archive.info.secondsPerPoint }

    @inline(__always)
    func covers(_ t: Int) -> Bool { t <= newest && t > newest - archive.info.retention }
}

/// Where the value of one target interval comes from: the source archive of the same step,
/// else the finest finer one, aggregated.
struct SourceLookup {
    let same: SourceArchive?
    let finer: [SourceArchive]
    let step: Int
    let method: AggregationMethod
    let xFilesFactor: Float

    init(sources: [SourceArchive], step: Int, method: AggregationMethod, xFilesFactor: Float) {
        same = sources.first { $0.step == step }
        finer = sources.filter { $0.step < step && step % $0.step == 0 }.sorted { $0.step < $1.step }
        self.step = step
        self.method = method
        self.xFilesFactor = xFilesFactor
    }

    var isEmpty: Bool { same == nil && finer.isEmpty }

    /// The source's value for target interval `t`, or nil.
    func value(at t: Int) -> Double? {
        if let same, same.covers(t) { return same.archive.value(at: t) }
        for source in finer where source.covers(t) {
            var aggregator = Aggregator(method)
            var u = t
            let end = t + step
            while u < end {
                aggregator.add(source.archive.value(at: u))
                u += source.step
            }
            return aggregator.result(xFilesFactor: xFilesFactor)
        }
        return nil
    }
}
