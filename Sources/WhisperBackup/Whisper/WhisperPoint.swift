/// One point of a whisper archive: a timestamp (u32) and a value (f64), 12 bytes big-endian.
public struct WhisperPoint: Sendable, Equatable {
    public var timestamp: UInt32
    public var value: Double

    public init(timestamp: UInt32, value: Double) {
        self.timestamp = timestamp
        self.value = value
    }

    /// The point stored at byte `offset` of `bytes`.
    @inline(__always)
    public init(_ bytes: UnsafeRawBufferPointer, at offset: Int) {
        timestamp = WhisperPoint.timestamp(bytes, at: offset)
        value = WhisperPoint.value(bytes, at: offset)
    }

    /// The timestamp stored at byte `offset` of `bytes`.
    @inline(__always)
    public static func timestamp(_ bytes: UnsafeRawBufferPointer, at offset: Int) -> UInt32 {
        UInt32(bigEndian: bytes.loadUnaligned(fromByteOffset: offset, as: UInt32.self))
    }

    /// The value stored at byte `offset` of `bytes` (the 8 bytes after the timestamp).
    @inline(__always)
    public static func value(_ bytes: UnsafeRawBufferPointer, at offset: Int) -> Double {
        Double(bitPattern: UInt64(bigEndian: bytes.loadUnaligned(fromByteOffset: offset + 4, as: UInt64.self)))
    }

    /// Writes the point at byte `offset` of `bytes`.
    @inline(__always)
    public func store(into bytes: UnsafeMutableRawBufferPointer, at offset: Int) {
        storeTimestamp(into: bytes, at: offset)
        storeValue(into: bytes, at: offset)
    }

    /// Writes only the timestamp (4 bytes at `offset`).
    @inline(__always)
    public func storeTimestamp(into bytes: UnsafeMutableRawBufferPointer, at offset: Int) {
        bytes.storeBytes(of: timestamp.bigEndian, toByteOffset: offset, as: UInt32.self)
    }

    /// Writes only the value (8 bytes at `offset + 4`).
    @inline(__always)
    public func storeValue(into bytes: UnsafeMutableRawBufferPointer, at offset: Int) {
        bytes.storeBytes(of: value.bitPattern.bigEndian, toByteOffset: offset + 4, as: UInt64.self)
    }

    /// The 12 bytes whisper stores for the point.
    public var encoded: [UInt8] {
        var out = [UInt8](repeating: 0, count: WhisperHeader.pointSize)
        out.withUnsafeMutableBytes { store(into: $0, at: 0) }
        return out
    }

    /// Equal timestamps and identical value bits (so NaN equals NaN, and 0.0 differs from -0.0).
    public func isIdentical(to other: WhisperPoint) -> Bool {
        timestamp == other.timestamp && value.bitPattern == other.value.bitPattern
    }
}
