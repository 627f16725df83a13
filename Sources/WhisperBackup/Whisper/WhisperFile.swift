/// A whole whisper file in memory: its validated header and bytes. Makes empty files as
/// `whisper.create` does, reads points as `whisper.fetch` does, stores points the way
/// whisper addresses them, and applies fill plans.
public struct WhisperFile: Sendable {
    public let header: WhisperHeader
    public private(set) var bytes: [UInt8]

    /// Takes `bytes` after validating them as whisper.
    public init(bytes: [UInt8]) throws {
        header = try WhisperHeader(bytes)
        self.bytes = bytes
    }

    /// An empty file (every archive never written) with `header`'s layout.
    public init(header: WhisperHeader) {
        self.header = header
        bytes = header.encoded() + [UInt8](repeating: 0, count: header.fileSize - header.headerSize)
    }

    /// Runs `body` with a view of archive `index`.
    public func withArchive<R>(_ index: Int, _ body: (WhisperArchive) throws -> R) rethrows -> R {
        try bytes.withUnsafeBytes { try body(WhisperArchive(header.archives[index], in: $0)) }
    }

    /// The value archive `index` holds for the interval containing `timestamp`, or nil.
    public func value(archive index: Int, at timestamp: Int) -> Double? {
        withArchive(index) { $0.value(at: $0.info.interval(timestamp)) }
    }

    /// Stores `value` for the interval containing `timestamp` in archive `index` only, where
    /// whisper would: an archive never written takes it in its first slot (its base). No
    /// propagation to other archives.
    public mutating func store(archive index: Int, timestamp: Int, value: Double) {
        let info = header.archives[index]
        let t = info.interval(timestamp)
        let base = withArchive(index) { $0.base }
        let slot = base == 0 ? 0 : info.slot(of: t, base: base)
        let point = WhisperPoint(timestamp: UInt32(t), value: value)
        bytes.withUnsafeMutableBytes { point.store(into: $0, at: info.offset(ofSlot: slot)) }
    }

    /// Writes raw `point` into slot `slot` of archive `index` (for building damaged files).
    public mutating func store(archive index: Int, slot: Int, point: WhisperPoint) {
        let offset = header.archives[index].offset(ofSlot: slot)
        bytes.withUnsafeMutableBytes { point.store(into: $0, at: offset) }
    }

    /// Applies `plan` as `wsp-merge` does on disk, and returns the number of points written.
    @discardableResult
    public mutating func apply(_ plan: FillPlan) -> Int {
        bytes.withUnsafeMutableBytes { buf in
            for w in plan.writes { w.point.store(into: buf, at: w.offset) }
        }
        return plan.count
    }
}
