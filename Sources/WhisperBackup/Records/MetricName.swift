/// Metric names and their paths under a whisper root: `a.b.c` <-> `a/b/c.wsp`.
public enum MetricName {
    /// Longest metric accepted: keeps every record under PIPE_BUF with room for its other fields.
    public static let maxLength = 1024

    /// Checks that `name` is a metric name that stays inside any root.
    public static func validate(_ name: String) throws {
        if name.isEmpty { throw RecordError("empty metric name") }
        if name.utf8.count > maxLength { throw RecordError("metric name longer than \(maxLength) bytes") }
        for b in name.utf8 {
            switch b {
            case 0: throw RecordError("metric name contains NUL")
            case 10: throw RecordError("metric name contains a newline")
            case 13: throw RecordError("metric name contains a carriage return")
            case 9: throw RecordError("metric name contains a tab")
            case UInt8(ascii: "/"): throw RecordError("metric name contains '/' (would leave its directory)")
            default: break
            }
        }
        for part in name.split(byte: UInt8(ascii: ".")) {
            if part.isEmpty { throw RecordError("metric name has an empty component") }
        }
    }

    /// The path of `name`'s whisper file relative to the root: each '.' byte a '/' (see
    /// ByteText: a '.' before a combining mark is one too).
    public static func relativePath(_ name: String) -> String {
        String(decoding: name.utf8.map { $0 == UInt8(ascii: ".") ? UInt8(ascii: "/") : $0 }, as: UTF8.self) + ".wsp"
    }

    /// The metric name of a relative path `a/b/c.wsp`, or nil if it is not a whisper file path.
    public static func fromRelativePath(_ path: String) -> String? {
        guard path.hasSuffix(bytes: ".wsp") else { return nil }
        let stem = path.droppingLast(bytes: 4)
        if stem.isEmpty { return nil }
        return String(decoding: stem.utf8.map { $0 == UInt8(ascii: "/") ? UInt8(ascii: ".") : $0 }, as: UTF8.self)
    }
}
