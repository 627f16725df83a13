/// `--dry-run`: reads pass through, writes and deletes do nothing.
public final class DryRunStore: Store {
    let base: Store
    public init(_ base: Store) { self.base = base }
    public var location: String { base.location }
    public func put(_ key: String, body: StoreBody) throws {}
    public func putMany(_ items: [(key: String, body: StoreBody)]) -> [Error?] { items.map { _ in nil } }
    public func get(_ key: String, to path: String) throws { try base.get(key, to: path) }
    public func head(_ key: String) throws -> StoreObject? { try base.head(key) }
    public func list(prefix: String, _ each: (StoreObject) throws -> Void) throws { try base.list(prefix: prefix, each) }
    public func delete(_ keys: [String]) throws -> [(key: String, error: Error)] { [] }
}
