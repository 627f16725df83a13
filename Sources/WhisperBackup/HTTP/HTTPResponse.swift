/// The final response to a request (after any `100 Continue`).
public struct HTTPResponse: Sendable {
    public var status: Int
    /// Header names in lower case, in the order received.
    public var headers: [(name: String, value: String)]
    /// The body, unless it went to `HTTPRequest.responseFile`.
    public var body: [UInt8]
    /// Bytes of body received (into memory or the file).
    public var bodyBytes: Int64
    /// MD5 of the bytes written to `responseFile` (nil when the body stayed in memory).
    public var bodyMD5: [UInt8]?

    /// The first value of a header, by case-insensitive name.
    public func header(_ name: String) -> String? {
        let n = name.lowercased()
        return headers.first(where: { $0.name == n })?.value
    }

    public var isSuccess: Bool { (200..<300).contains(status) }
    public var bodyText: String { String(decoding: body, as: UTF8.self) }
}
