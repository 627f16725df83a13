/// One archive of a whisper file's bytes, read the way whisper reads it. A view: valid only
/// while the buffer it was made from is.
public struct WhisperArchive {
    public let info: ArchiveInfo
    public let bytes: UnsafeRawBufferPointer

    /// The archive `info` of the whole file `bytes` (whose header gave `info`).
    public init(_ info: ArchiveInfo, in bytes: UnsafeRawBufferPointer) {
        precondition(info.end <= bytes.count, "archive beyond the end of the buffer")
        self.info = info
        self.bytes = bytes
    }

    /// The timestamp in the first slot, which anchors the ring; 0 when never written.
    public var base: Int { timestamp(atSlot: 0) }
    public var isEmpty: Bool { base == 0 }

    @inline(__always)
    public func timestamp(atSlot slot: Int) -> Int {
        Int(WhisperPoint.timestamp(bytes, at: info.offset(ofSlot: slot)))
    }

    @inline(__always)
    public func value(atSlot slot: Int) -> Double {
        WhisperPoint.value(bytes, at: info.offset(ofSlot: slot))
    }

    public func point(atSlot slot: Int) -> WhisperPoint { WhisperPoint(bytes, at: info.offset(ofSlot: slot)) }

    /// The value for interval `t`, or nil when the archive is empty or the slot holds some
    /// other time: what `whisper.fetch` returns for `t` from this archive.
    @inline(__always)
    public func value(at t: Int) -> Double? {
        let base = self.base
        return base == 0 ? nil : value(at: t, base: base)
    }

    /// The value for interval `t` with the ring anchored at `base` (any timestamp that
    /// addresses like the archive's base), or nil when the slot holds some other time.
    @inline(__always)
    public func value(at t: Int, base: Int) -> Double? {
        let slot = info.slot(of: t, base: base)
        return timestamp(atSlot: slot) == t ? value(atSlot: slot) : nil
    }

    /// The timestamp that anchors the ring: the base, or for an archive whose first slot is
    /// empty but which holds points elsewhere (whisper never leaves one so; damaged or
    /// generated files can), the addressing most of those points agree on. Nil when the
    /// archive holds no point.
    public var addressingBase: Int? {
        let base = self.base
        if base != 0 { return base }
        let step = info.secondsPerPoint
        let period = info.retention
        var first: Int? = nil
        var disagree = false
        var slot = 1
        while slot < info.points {
            let t = timestamp(atSlot: slot)
            if t != 0 && t % step == 0 {
                let phase = Whisper.mod(t - slot * step, period)
                if first == nil { first = phase } else if phase != first { disagree = true }
            }
            slot += 1
        }
        guard var best = first else { return nil }
        if disagree {
            var votes: [Int: Int] = [:]
            slot = 1
            while slot < info.points {
                let t = timestamp(atSlot: slot)
                if t != 0 && t % step == 0 { votes[Whisper.mod(t - slot * step, period), default: 0] += 1 }
                slot += 1
            }
            best = votes.max { $0.value < $1.value || ($0.value == $1.value && $0.key > $1.key) }!.key
        }
        // A phase of 0 addresses like `period`, which cannot be mistaken for "no base".
        return best == 0 ? period : best
    }

    /// The oldest and newest intervals the archive holds a point for (slots whose timestamp
    /// addresses back to them with the ring anchored at `base`).
    public func span(base: Int) -> (oldest: Int, newest: Int)? {
        let step = info.secondsPerPoint
        let period = info.retention
        var oldest = Int.max
        var newest = Int.min
        var slot = 0
        while slot < info.points {
            let t = timestamp(atSlot: slot)
            // t addresses this slot exactly when t - base - slot * step is a whole number of laps.
            if t != 0 && (t - base - slot * step) % period == 0 {
                if t < oldest { oldest = t }
                if t > newest { newest = t }
            }
            slot += 1
        }
        return newest == Int.min ? nil : (oldest, newest)
    }

    /// The newest interval the archive holds a point for, or nil when it holds none (as
    /// whisper reads it: an archive without a base holds none).
    public func newestTimestamp() -> Int? {
        let base = self.base
        return base == 0 ? nil : span(base: base)?.newest
    }

    /// The values of the intervals from the one holding `from` up to (not including)
    /// `until`, nil for gaps.
    public func fetch(from: Int, until: Int) -> [Double?] {
        let step = info.secondsPerPoint
        var out: [Double?] = []
        var t = info.interval(from)
        while t < until {
            out.append(value(at: t))
            t += step
        }
        return out
    }
}
