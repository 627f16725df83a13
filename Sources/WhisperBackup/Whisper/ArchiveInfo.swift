/// One archive as the header describes it, and whisper's addressing of its slots.
///
/// An archive is a ring of `points` slots, one per `secondsPerPoint` interval. Whisper places
/// the interval `t` (a timestamp aligned to the step) at slot `((t - base) / step) mod points`,
/// where `base` is the timestamp stored in the archive's first slot; a base of 0 means the
/// archive has never been written. A slot holds a point for `t` only when the timestamp
/// stored in it is `t`; anything else (0, an older lap of the ring) is a gap.
public struct ArchiveInfo: Sendable, Equatable {
    public var offset: Int
    public var secondsPerPoint: Int
    public var points: Int
    public var retention: Int { secondsPerPoint * points }
    public var size: Int { points * WhisperHeader.pointSize }
    public var end: Int { offset + size }

    public init(offset: Int, secondsPerPoint: Int, points: Int) {
        self.offset = offset
        self.secondsPerPoint = secondsPerPoint
        self.points = points
    }

    /// `t` rounded down to the start of its interval (whisper's `t - t % step`).
    public func interval(_ t: Int) -> Int { t - Whisper.mod(t, secondsPerPoint) }

    /// The slot of interval `t` when the archive's base is `base`: whisper's
    /// `((t - base) // step) % points`, with Python's floor division and modulo.
    public func slot(of t: Int, base: Int) -> Int {
        Whisper.mod(Whisper.floorDiv(t - base, secondsPerPoint), points)
    }

    /// Byte offset of slot `slot` in the file.
    public func offset(ofSlot slot: Int) -> Int { offset + slot * WhisperHeader.pointSize }
}

/// Integer helpers with Python's rounding, which whisper's arithmetic relies on.
public enum Whisper {
    /// Floor division (Python's `//`): rounds toward minus infinity.
    @inline(__always)
    public static func floorDiv(_ a: Int, _ b: Int) -> Int {
        let q = a / b
        return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q
    }

    /// Modulo with the sign of the divisor (Python's `%`).
    @inline(__always)
    public static func mod(_ a: Int, _ b: Int) -> Int {
        let r = a % b
        return r != 0 && (r < 0) != (b < 0) ? r + b : r
    }
}
