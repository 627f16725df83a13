/// `--dry-run`: reads pass through, writes and deletes do nothing. A store that does not exist
/// yet (`--create-bucket`) is not created: it reads as the empty store it would be.
public final class DryRunStore: Store {
    let base: Store
    /// `create()` was asked for: the base store is missing and is read as empty.
    private(set) var missing = false
    public init(_ base: Store) { self.base = base }
    public var location: String { base.location }
    public func prepare() throws { try base.prepare() }
    public func create() throws { missing = true }
    public func put(_ key: String, body: StoreBody) throws {}
    public func putMany(_ items: [(key: String, body: StoreBody)]) -> [Error?] { items.map { _ in nil } }
    public func get(_ key: String, to path: String) throws {
        if missing { throw StoreError(.notFound, "\(location): \(key): no such object") }
        try base.get(key, to: path)
    }
    public func link(_ key: String, as path: String) throws -> Bool {
        if missing { throw StoreError(.notFound, "\(location): \(key): no such object") }
        return try base.link(key, as: path)
    }
    public func head(_ key: String) throws -> StoreObject? { missing ? nil : try base.head(key) }
    public func localFile(_ key: String) -> String? { missing ? nil : base.localFile(key) }
    public var listsRanges: Bool { base.listsRanges }
    public func list(prefix: String, startAfter: String?, sizes: Bool, _ each: (StoreObject) throws -> Void) throws {
        if !missing { try base.list(prefix: prefix, startAfter: startAfter, sizes: sizes, each) }
    }
    public func delete(_ keys: [String]) throws -> [(key: String, error: Error)] { [] }
}
