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
        if base == 0 { return nil }
        let slot = info.slot(of: t, base: base)
        return timestamp(atSlot: slot) == t ? value(atSlot: slot) : nil
    }

    /// The newest interval the archive holds a point for (a slot whose timestamp addresses
    /// back to that slot), or nil when it holds none.
    public func newestTimestamp() -> Int? {
        let base = self.base
        if base == 0 { return nil }
        var newest: Int? = nil
        let step = info.secondsPerPoint
        for slot in 0..<info.points {
            let t = timestamp(atSlot: slot)
            if t == 0 || (newest.map { t <= $0 } ?? false) { continue }
            if Whisper.mod(t - base, step) == 0 && info.slot(of: t, base: base) == slot { newest = t }
        }
        return newest
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
