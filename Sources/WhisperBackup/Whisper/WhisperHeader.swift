/// Why bytes are not a usable whisper file.
public struct WhisperFormatError: Error, CustomStringConvertible, Sendable {
    public var reason: String
    public init(_ reason: String) { self.reason = reason }
    public var description: String { reason }
}

/// The header of a whisper file: metadata and archive list, validated against the file size.
/// Layout (big-endian): aggregation u32, max retention u32, xFilesFactor f32, archive count
/// u32; then per archive offset u32, seconds per point u32, points u32; then the archives,
/// 12 bytes a point (timestamp u32, value f64).
public struct WhisperHeader: Sendable, Equatable {
    public static let metadataSize = 16
    public static let archiveInfoSize = 12
    public static let pointSize = 12
    /// go-carbon's compressed whisper files start with this.
    public static let compressedMagic = Array("whisper_compressed".utf8)

    public var aggregation: AggregationMethod
    public var maxRetention: Int
    public var xFilesFactor: Float
    public var archives: [ArchiveInfo]

    public var headerSize: Int { WhisperHeader.metadataSize + archives.count * WhisperHeader.archiveInfoSize }
    public var fileSize: Int { archives.last.map(\.end) ?? headerSize }

    /// Parses and validates the header at the start of `bytes`; `fileSize` is the whole file's
    /// size (the archives must end exactly there).
    public init(_ bytes: UnsafeRawBufferPointer, fileSize: Int) throws {
        if bytes.count >= WhisperHeader.compressedMagic.count,
           Array(bytes[0..<WhisperHeader.compressedMagic.count]) == WhisperHeader.compressedMagic {
            throw WhisperFormatError("go-carbon compressed whisper file (not supported)")
        }
        guard bytes.count >= WhisperHeader.metadataSize else {
            throw WhisperFormatError(fileSize == 0 ? "empty file, not a whisper file" : "too short for a whisper header (\(fileSize) bytes)")
        }
        func u32(_ at: Int) -> UInt32 {
            UInt32(bytes[at]) << 24 | UInt32(bytes[at + 1]) << 16 | UInt32(bytes[at + 2]) << 8 | UInt32(bytes[at + 3])
        }
        guard let agg = AggregationMethod(rawValue: u32(0)) else {
            throw WhisperFormatError("not a whisper file (aggregation type \(u32(0)))")
        }
        aggregation = agg
        maxRetention = Int(u32(4))
        xFilesFactor = Float(bitPattern: u32(8))
        let count = Int(u32(12))
        guard count >= 1 && count <= 64 else { throw WhisperFormatError("not a whisper file (\(count) archives)") }
        guard xFilesFactor >= 0 && xFilesFactor <= 1 else {
            throw WhisperFormatError("not a whisper file (xFilesFactor \(xFilesFactor))")
        }
        let headerSize = WhisperHeader.metadataSize + count * WhisperHeader.archiveInfoSize
        guard bytes.count >= headerSize else { throw WhisperFormatError("truncated whisper header") }
        var list: [ArchiveInfo] = []
        var expected = headerSize
        for i in 0..<count {
            let at = WhisperHeader.metadataSize + i * WhisperHeader.archiveInfoSize
            let a = ArchiveInfo(offset: Int(u32(at)), secondsPerPoint: Int(u32(at + 4)), points: Int(u32(at + 8)))
            guard a.secondsPerPoint > 0, a.points > 0 else {
                throw WhisperFormatError("archive \(i): zero seconds per point or points")
            }
            guard a.offset == expected else {
                throw WhisperFormatError("archive \(i) at offset \(a.offset), expected \(expected)")
            }
            if let prev = list.last {
                guard a.secondsPerPoint > prev.secondsPerPoint, a.secondsPerPoint % prev.secondsPerPoint == 0 else {
                    throw WhisperFormatError("archive \(i): \(a.secondsPerPoint) s per point is not a multiple of \(prev.secondsPerPoint)")
                }
                guard a.retention > prev.retention else {
                    throw WhisperFormatError("archive \(i) retains less than archive \(i - 1)")
                }
            }
            expected = a.end
            list.append(a)
        }
        archives = list
        guard fileSize == expected else {
            throw WhisperFormatError("file is \(fileSize) bytes, header says \(expected)")
        }
    }

    public init(_ bytes: [UInt8]) throws {
        self = try bytes.withUnsafeBytes { try WhisperHeader($0, fileSize: bytes.count) }
    }

    public init(aggregation: AggregationMethod, xFilesFactor: Float, archives: [(secondsPerPoint: Int, points: Int)]) {
        self.aggregation = aggregation
        self.xFilesFactor = xFilesFactor
        var offset = WhisperHeader.metadataSize + archives.count * WhisperHeader.archiveInfoSize
        var list: [ArchiveInfo] = []
        for a in archives {
            list.append(ArchiveInfo(offset: offset, secondsPerPoint: a.secondsPerPoint, points: a.points))
            offset += a.points * WhisperHeader.pointSize
        }
        self.archives = list
        self.maxRetention = list.map(\.retention).max() ?? 0
    }

    /// The header bytes as whisper writes them.
    public func encoded() -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(headerSize)
        func put(_ v: UInt32) { out += [UInt8(v >> 24), UInt8(v >> 16 & 0xff), UInt8(v >> 8 & 0xff), UInt8(v & 0xff)] }
        put(aggregation.rawValue)
        put(UInt32(maxRetention))
        put(xFilesFactor.bitPattern)
        put(UInt32(archives.count))
        for a in archives {
            put(UInt32(a.offset))
            put(UInt32(a.secondsPerPoint))
            put(UInt32(a.points))
        }
        return out
    }
}
