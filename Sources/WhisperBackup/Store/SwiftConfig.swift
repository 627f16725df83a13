/// `swift://CONTAINER/PREFIX`: an OpenStack Swift container, with credentials from the
/// environment (never from argv):
///
/// - v1 auth (the original whisper-backup's variables): `ST_AUTH`, `ST_USER`, `ST_KEY`.
/// - Keystone v3: `OS_AUTH_URL`, `OS_USERNAME` (or `OS_USER_ID`), `OS_PASSWORD`,
///   `OS_PROJECT_NAME` (or `OS_PROJECT_ID`), `OS_USER_DOMAIN_NAME` / `_ID`,
///   `OS_PROJECT_DOMAIN_NAME` / `_ID` (both default to the domain id `default`),
///   `OS_REGION_NAME`, `OS_INTERFACE` (default `public`); or an application credential
///   (`OS_APPLICATION_CREDENTIAL_ID`, `OS_APPLICATION_CREDENTIAL_SECRET`). The storage URL is
///   the catalog's `object-store` endpoint unless `OS_STORAGE_URL` names one.
/// - A ready token: `OS_AUTH_TOKEN` with `OS_STORAGE_URL`, used first; on a 401 the
///   credentials above (if any) get a new one.
///
/// When both `ST_AUTH` and `OS_AUTH_URL` are set, `ST_AUTH` is used.
public struct SwiftConfig: Sendable {
    public enum Credentials: Sendable {
        case v1(authURL: String, user: String, key: Secret)
        case keystone(KeystoneCredentials)
    }

    public var container: String
    /// Key prefix inside the container (the URL's path, without its leading "/").
    public var prefix: String
    /// How to get a token; nil when only a ready token was given.
    public var credentials: Credentials?
    /// `OS_AUTH_TOKEN`: a token to use before authenticating.
    public var token: Secret?
    /// `OS_STORAGE_URL`: the account URL, overriding the one auth returns.
    public var storageURL: String?
    /// `OS_CACERT`: a CA bundle for TLS verification.
    public var caBundle: String?
    public var insecure = false
    /// PUTs in flight at once for a batch (`--connections`).
    public var connections = ConcurrentPuts.defaultWidth
    /// `WSP_SWIFT_LIST_LIMIT`: objects per listing page, to go under the default (1000, or
    /// the cluster's `container_listing_limit` from `/info` if lower).
    public var listLimit: Int?

    public static let variablesHelp = "ST_AUTH, ST_USER, ST_KEY (v1 auth), or OS_AUTH_URL, OS_USERNAME, OS_PASSWORD, OS_PROJECT_NAME (Keystone v3), or OS_AUTH_TOKEN with OS_STORAGE_URL"

    public init(url: StoreURL, settings: StoreSettings, env: (String) -> String? = system_getenv) throws {
        func get(_ name: String) -> String? {
            guard let v = env(name), !v.isEmpty else { return nil }
            return v
        }
        let location = url.text
        container = url.host
        prefix = url.keyPrefix
        guard !container.isEmpty else {
            throw ConfigError("\(location): no container (swift://CONTAINER/PREFIX)")
        }
        guard container.utf8.count <= 256, !container.contains("/") else {
            throw ConfigError("\(location): \(container) is not a valid Swift container name")
        }
        insecure = settings.insecure
        connections = settings.connections
        caBundle = get("OS_CACERT")
        if let l = get("WSP_SWIFT_LIST_LIMIT") {
            guard let n = Int(l), n > 0 else { throw ConfigError("WSP_SWIFT_LIST_LIMIT=\(l): not a positive number") }
            listLimit = n
        }

        token = get("OS_AUTH_TOKEN").map(Secret.init)
        storageURL = get("OS_STORAGE_URL").map(SwiftConfig.trimSlash)
        if let u = storageURL, !SwiftConfig.isHTTP(u) {
            throw ConfigError("\(location): OS_STORAGE_URL=\(u) is not an http(s) URL")
        }

        if let authURL = get("ST_AUTH") {
            guard SwiftConfig.isHTTP(authURL) else { throw ConfigError("\(location): ST_AUTH=\(authURL) is not an http(s) URL") }
            guard let user = get("ST_USER") else { throw ConfigError("\(location): ST_AUTH is set but ST_USER is not") }
            guard let key = get("ST_KEY") else { throw ConfigError("\(location): ST_AUTH is set but ST_KEY is not") }
            credentials = .v1(authURL: authURL, user: user, key: Secret(key))
        } else if get("OS_AUTH_URL") != nil {
            credentials = .keystone(try KeystoneCredentials(env: get, location: location))
        } else if token != nil {
            guard storageURL != nil else {
                throw ConfigError("\(location): OS_AUTH_TOKEN needs OS_STORAGE_URL (or OS_AUTH_URL and credentials)")
            }
        } else {
            throw ConfigError("\(location): no Swift credentials in the environment: set \(SwiftConfig.variablesHelp)")
        }
    }

    /// The store (no request yet: `prepare()` authenticates and checks the container).
    public func store(location: String) throws -> SwiftStore {
        var options = HTTPClient.Options()
        options.insecure = insecure
        options.caBundle = caBundle
        let client = try HTTPClient(options: options)
        return SwiftStore(config: self, location: location, perform: { try client.perform($0) },
                          performMany: { client.performMany($0, width: $1) })
    }

    static func isHTTP(_ u: String) -> Bool {
        let l = u.lowercased()
        return l.hasPrefix("http://") || l.hasPrefix("https://")
    }

    static func trimSlash(_ u: String) -> String {
        var s = u
        while s.hasSuffix("/") { s.removeLast() }
        return s
    }
}

/// A credential or token. It prints as `<secret>`, so an interpolated config, error or log
/// line can never show it.
public struct Secret: Sendable, Equatable, CustomStringConvertible, CustomDebugStringConvertible {
    public let value: String
    public init(_ value: String) {
        self.value = value
        Redaction.register(value)
    }
    public var description: String { "<secret>" }
    public var debugDescription: String { "<secret>" }
}
