/// A request that got no complete response, classified so a store can decide on retries.
public struct HTTPError: Error, CustomStringConvertible, Sendable {
    public enum Kind: Sendable {
        /// Refused, reset, closed early, DNS, a cut-off body: trying again may work.
        case connection
        /// Connect timeout, or the transfer stalled.
        case timeout
        /// Certificate verification or TLS set-up failed: retrying will not help.
        case tls
        /// Stopped by SIGINT/SIGTERM.
        case interrupted
        /// Reading the request body or writing the response file failed.
        case local
        /// Anything else libcurl reports (bad URL, unsupported protocol...).
        case other
    }
    public var kind: Kind
    public var message: String
    /// libcurl's `CURLcode`.
    public var code: Int

    public init(_ kind: Kind, _ message: String, code: Int = 0) {
        self.kind = kind
        self.message = message
        self.code = code
    }

    /// Whether the same request may succeed when sent again.
    public var isTransient: Bool { kind == .connection || kind == .timeout }
    public var description: String { message }
}
