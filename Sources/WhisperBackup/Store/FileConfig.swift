/// `file:///abs/dir` or `file://rel/dir` (and a bare path): the directory of a FileStore.
public struct FileConfig {
    public var directory: String

    public init(url: StoreURL) throws {
        let p = url.host + url.path
        guard !p.isEmpty else { throw ConfigError("\(url.text): no directory in file:// URL") }
        directory = Path.absolute(p)
    }

    /// Opens the store; with `create`, makes a missing directory first (`--create-bucket`),
    /// or, in a dry run, treats it as the empty store it would create.
    public func open(location: String, create: Bool = false, dryRun: Bool = false) throws -> FileStore {
        if create && (try? system_stat(directory)) == nil {
            if dryRun {
                let store = FileStore(root: directory, location: location)
                store.missingIsEmpty = true
                return store
            }
            do { try Path.makeDirectories(directory) } catch { throw ConfigError("\(location): cannot create \(directory): \(error)") }
        }
        guard let st = try? system_stat(directory) else {
            throw ConfigError("\(location): directory \(directory) does not exist (create it, or pass --create-bucket)")
        }
        guard st.isDirectory else { throw ConfigError("\(location): \(directory) is not a directory") }
        return FileStore(root: directory, location: location)
    }
}
