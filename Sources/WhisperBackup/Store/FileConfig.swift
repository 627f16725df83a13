/// `file:///abs/dir` or `file://rel/dir` (and a bare path): the directory of a FileStore.
public struct FileConfig {
    public var directory: String

    public init(url: StoreURL) throws {
        let p = url.host + url.path
        guard !p.isEmpty else { throw ConfigError("\(url.text): no directory in file:// URL") }
        directory = Path.absolute(p)
    }

    /// The store (nothing checked yet: `prepare()` does).
    public func store(location: String) -> FileStore { FileStore(root: directory, location: location) }
}
