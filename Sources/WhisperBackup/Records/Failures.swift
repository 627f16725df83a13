/// A configuration problem found before any work (bad option, bad store URL, missing
/// credentials, a store that cannot be opened): the tool exits 2, nothing was done. Thrown
/// from every layer above this one; `ToolMain.exitCode(for:)` maps it.
public struct ConfigError: Error, CustomStringConvertible {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// Some records failed; each was reported on stderr. Exit status 1.
public struct RecordsFailed: Error, CustomStringConvertible {
    public var count: Int
    public init(count: Int) { self.count = count }
    public var description: String { "\(count) record(s) failed" }
}
