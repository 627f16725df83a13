/// What a request sends. A file is read from its start on every attempt, so a retried or
/// rewound request sends it whole.
public enum HTTPBody: Sendable {
    case empty
    case bytes([UInt8])
    case file(String)
}

/// One HTTP request: an absolute, already percent-encoded URL, headers as given (nothing
/// is added but `Host` from the URL, `User-Agent` and `Content-Length`), and a body.
public struct HTTPRequest: Sendable {
    public var method: String
    public var url: String
    public var headers: [(name: String, value: String)]
    public var body: HTTPBody
    /// Where a 2xx response's body goes: nil keeps it in `HTTPResponse.body`; a path is created
    /// or truncated before the request and gets the body of a 2xx response. The body of any
    /// other response (an error document) always stays in memory.
    public var responseFile: String?

    public init(method: String, url: String, headers: [(name: String, value: String)] = [],
                body: HTTPBody = .empty, responseFile: String? = nil) {
        self.method = method
        self.url = url
        self.headers = headers
        self.body = body
        self.responseFile = responseFile
    }
}
