/// `file:///abs/dir` or `file://rel/dir` (and a bare path): the directory of a FileStore.
public struct FileConfig {
    public var directory: String

    public init(url: StoreURL) throws {
        let p = url.host + url.path
        guard !p.isEmpty else { throw ConfigError("\(url.text): no directory in file:// URL") }
        directory = Path.absolute(p)
    }

    public func open(location: String) throws -> FileStore {
        guard let st = try? system_stat(directory) else {
            throw ConfigError("\(location): directory \(directory) does not exist (create it first)")
        }
        guard st.isDirectory else { throw ConfigError("\(location): \(directory) is not a directory") }
        return FileStore(root: directory, location: location)
    }
}
