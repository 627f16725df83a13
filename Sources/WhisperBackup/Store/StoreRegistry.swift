/// Settings that apply to any store, from the shared command-line options and environment.
public struct StoreSettings: Sendable {
    public var endpoint: String?
    public var region: String?
    public var pathStyle: Bool?
    public var insecure = false
    public var createMissing = false
    public var dryRun = false
    public var retries = 5
    /// Uploads of a batch in flight at once over HTTP (S3, Swift).
    public var connections = ConcurrentPuts.defaultWidth
    public init() {}
}

/// Opens a store from its URL: backends come from one table keyed by scheme, and the
/// cross-cutting wrappers (retry, dry run) are stacked here and nowhere else.
public enum StoreRegistry {
    /// Makes the base store of a URL (no requests yet) and the key prefix inside it.
    public typealias Factory = (StoreURL, StoreSettings) throws -> (store: Store, prefix: String)

    /// scheme -> how to open it. A new backend adds one line.
    nonisolated(unsafe) public static var factories: [String: Factory] = [
        "file": { url, _ in (try FileConfig(url: url).store(location: url.text), "") },
        "s3": { url, s in let c = try S3Config(url: url, settings: s); return (try S3Store(config: c), c.prefix) },
        "swift": { url, s in let c = try SwiftConfig(url: url, settings: s); return (try c.store(location: url.text), c.prefix) },
    ]

    /// scheme -> the longest path component and key its stores hold.
    nonisolated(unsafe) public static var limits: [String: StoreLayout.Limits] = [
        "file": .file, "s3": .object, "swift": .object,
    ]

    /// The store and the layout of keys inside it.
    public static func open(_ text: String, settings: StoreSettings) throws -> (store: Store, layout: StoreLayout) {
        let url = try StoreURL(text)
        guard let factory = factories[url.scheme] else {
            let known = factories.keys.sorted().map { "\($0)://" }.joined(separator: ", ")
            throw ConfigError("\(text): unknown store scheme \(url.scheme):// (known: \(known))")
        }
        let opened = try factory(url, settings)
        return (try wrap(opened.store, settings: settings), StoreLayout(prefix: opened.prefix, limits: limits[url.scheme] ?? .init()))
    }

    /// Wraps a base store once (retry, then dry run) and runs the opening probe through the
    /// wrappers: a missing store is created with `createMissing` (in a dry run it reads as
    /// empty instead). A probe that fails for good is a `ConfigError` (nothing was done); one
    /// that kept failing transiently stays a `StoreError` (a failed run).
    public static func wrap(_ base: Store, settings: StoreSettings) throws -> Store {
        var store = base
        if settings.retries > 0 { store = RetryStore(store, attempts: settings.retries + 1) }
        if settings.dryRun { store = DryRunStore(store) }
        do {
            do {
                try store.prepare()
            } catch let e as StoreError where e.kind == .notFound && settings.createMissing {
                try store.create()
            }
        } catch let e as StoreError where e.kind != .transient {
            throw ConfigError(e.message)
        }
        return store
    }
}
