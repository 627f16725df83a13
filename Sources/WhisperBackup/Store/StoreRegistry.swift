/// Settings that apply to any store, from the shared command-line options and environment.
public struct StoreSettings: Sendable {
    public var endpoint: String?
    public var region: String?
    public var pathStyle: Bool?
    public var insecure = false
    public var createMissing = false
    public var dryRun = false
    public var retries = 5
    public init() {}
}

/// Opens a store from its URL: backends come from one table keyed by scheme, and the
/// cross-cutting wrappers (retry, dry run) are stacked here and nowhere else.
public enum StoreRegistry {
    public typealias Factory = (StoreURL, StoreSettings) throws -> (store: Store, prefix: String)

    /// scheme -> how to open it. A new backend adds one line.
    nonisolated(unsafe) public static var factories: [String: Factory] = [
        "file": { url, settings in
            let cfg = try FileConfig(url: url)
            return (try cfg.open(location: url.text, create: settings.createMissing, dryRun: settings.dryRun), "")
        },
        "s3": { url, settings in let cfg = try S3Config(url: url, settings: settings); return (try cfg.open(), cfg.prefix) },
        "swift": { url, s in let c = try SwiftConfig(url: url, settings: s); return (try c.open(location: url.text, attempts: s.retries + 1), c.prefix) },
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
        var store: Store = opened.store
        if settings.retries > 0 { store = RetryStore(store, attempts: settings.retries + 1) }
        if settings.dryRun { store = DryRunStore(store) }
        return (store, StoreLayout(prefix: opened.prefix, limits: limits[url.scheme] ?? .init()))
    }
}
