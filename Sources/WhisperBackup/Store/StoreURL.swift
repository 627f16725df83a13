/// A store URL split into scheme, host (bucket, container) and path (key prefix).
public struct StoreURL: Sendable {
    public var text: String
    public var scheme: String
    public var host: String
    public var path: String

    public init(_ text: String) throws {
        self.text = text
        let u = Array(text.utf8)
        guard let at = (0..<max(0, u.count - 2)).first(where: { u[$0] == 58 && u[$0 + 1] == 47 && u[$0 + 2] == 47 }) else {
            throw ConfigError("\(text): not a store URL (file:///dir, s3://bucket/prefix, swift://container/prefix)")
        }
        scheme = String(decoding: u[0..<at], as: UTF8.self).lowercased()
        let rest = Substring(String(decoding: u[(at + 3)...], as: UTF8.self))
        if let slash = rest.firstIndex(of: "/") {
            host = String(rest[..<slash])
            path = String(rest[slash...])
        } else {
            host = String(rest)
            path = ""
        }
        if host.contains("@") { throw ConfigError("\(scheme)://...: credentials do not belong in the URL; use the environment") }
    }

    /// The path without the "/" that separates it from the host, as a key prefix. A second
    /// "/" belongs to the prefix (`s3://b//x/` lists keys `/x/...`): the Python whisper-backup
    /// made such keys from a `--storage-path` that started with "/".
    public var keyPrefix: String {
        path.hasPrefix("/") ? String(path.dropFirst()) : path
    }
}
