/// Keystone v3 credentials from `OS_*` variables, the token request they make, and the
/// reading of the token response (the catalog's `object-store` endpoint). Pure: the HTTP
/// exchange is `SwiftAuth`'s.
public struct KeystoneCredentials: Sendable {
    public enum Method: Sendable {
        /// A user (by name in a domain, or by id; without the password) and the password,
        /// scoped to a project.
        case password(user: JSON, password: Secret, scope: JSON)
        /// An application credential: already scoped to its project.
        case applicationCredential(id: String, secret: Secret)
    }

    /// `OS_AUTH_URL` as given.
    public var authURL: String
    public var method: Method
    /// `OS_REGION_NAME`: the catalog region to take the storage URL from.
    public var region: String?
    /// `OS_INTERFACE` (`public`, `internal`, `admin`; `publicURL` etc. accepted).
    public var interface: String
    /// Who, for messages (never the password).
    public var who: String

    public init(env get: (String) -> String?, location: String) throws {
        guard let url = get("OS_AUTH_URL"), SwiftConfig.isHTTP(url) else {
            throw ConfigError("\(location): OS_AUTH_URL is not an http(s) URL")
        }
        authURL = url
        region = get("OS_REGION_NAME")
        let iface = (get("OS_INTERFACE") ?? get("OS_ENDPOINT_TYPE") ?? "public").lowercased()
        interface = iface.hasSuffix("url") ? String(iface.dropLast(3)) : iface
        guard ["public", "internal", "admin"].contains(interface) else {
            throw ConfigError("\(location): OS_INTERFACE=\(iface): expected public, internal or admin")
        }
        let authType = (get("OS_AUTH_TYPE") ?? "").lowercased()
        if let credID = get("OS_APPLICATION_CREDENTIAL_ID"), authType.isEmpty || authType.contains("applicationcredential") {
            guard let secret = get("OS_APPLICATION_CREDENTIAL_SECRET") else {
                throw ConfigError("\(location): OS_APPLICATION_CREDENTIAL_ID is set but OS_APPLICATION_CREDENTIAL_SECRET is not")
            }
            method = .applicationCredential(id: credID, secret: Secret(secret))
            who = "application credential \(credID)"
            return
        }
        guard authType.isEmpty || authType == "password" || authType == "v3password" else {
            throw ConfigError("\(location): OS_AUTH_TYPE=\(authType) is not supported (password or v3applicationcredential)")
        }
        guard let password = get("OS_PASSWORD") else {
            throw ConfigError("\(location): OS_AUTH_URL is set but OS_PASSWORD is not")
        }
        func domain(_ kind: String) -> JSON {
            if let id = get("OS_\(kind)_DOMAIN_ID") { return .object([("id", .string(id))]) }
            if let name = get("OS_\(kind)_DOMAIN_NAME") { return .object([("name", .string(name))]) }
            if let id = get("OS_DEFAULT_DOMAIN_ID") ?? get("OS_DEFAULT_DOMAIN") { return .object([("id", .string(id))]) }
            return .object([("id", .string("default"))])
        }
        let user: JSON
        if let id = get("OS_USER_ID") {
            user = .object([("id", .string(id))])
            who = "user id \(id)"
        } else if let name = get("OS_USERNAME") {
            user = .object([("name", .string(name)), ("domain", domain("USER"))])
            who = "user \(name)"
        } else {
            throw ConfigError("\(location): OS_AUTH_URL is set but OS_USERNAME (or OS_USER_ID) is not")
        }
        let scope: JSON
        if let id = get("OS_PROJECT_ID") ?? get("OS_TENANT_ID") {
            scope = .object([("project", .object([("id", .string(id))]))])
        } else if let name = get("OS_PROJECT_NAME") ?? get("OS_TENANT_NAME") {
            scope = .object([("project", .object([("name", .string(name)), ("domain", domain("PROJECT"))]))])
        } else {
            throw ConfigError("\(location): Keystone needs a project for the storage catalog: set OS_PROJECT_NAME or OS_PROJECT_ID")
        }
        method = .password(user: user, password: Secret(password), scope: scope)
    }

    /// `POST` here: `OS_AUTH_URL` with `/v3/auth/tokens` (or `/auth/tokens` after `/v3`).
    public func tokenURL() throws -> String {
        let base = SwiftConfig.trimSlash(authURL)
        if base.hasSuffix("/v3") { return base + "/auth/tokens" }
        if base.hasSuffix("/v2.0") || base.contains("/v2.0/") {
            throw ConfigError("OS_AUTH_URL=\(authURL): Keystone v2.0 is not supported; use the v3 endpoint")
        }
        return base + "/v3/auth/tokens"
    }

    /// The JSON body of the token request. It holds the password: send it, never print it.
    public func tokenRequestBody() -> [UInt8] {
        let auth: JSON
        switch method {
        case let .password(user, password, scope):
            guard case .object(var members) = user else { preconditionFailure("user is an object") }
            members.append(("password", .string(password.value)))
            auth = .object([
                ("identity", .object([
                    ("methods", .array([.string("password")])),
                    ("password", .object([("user", .object(members))])),
                ])),
                ("scope", scope),
            ])
        case let .applicationCredential(id, secret):
            auth = .object([
                ("identity", .object([
                    ("methods", .array([.string("application_credential")])),
                    ("application_credential", .object([("id", .string(id)), ("secret", .string(secret.value))])),
                ])),
            ])
        }
        return Array(JSON.object([("auth", auth)]).text.utf8)
    }

    /// Reads a `201 Created` token response: the token (from `X-Subject-Token`), its life in
    /// seconds (`expires_at - issued_at`: both by Keystone's clock, so a skewed local clock
    /// does not matter), and the storage URL from the catalog (unless `storageURL` is given).
    public func readToken(subjectToken: String?, body: [UInt8], storageURL: String? = nil) throws -> (token: Secret, storageURL: String, lifetime: Int64?) {
        guard let t = subjectToken, !t.isEmpty else {
            throw KeystoneError("Keystone answered without an X-Subject-Token header")
        }
        let doc: JSON
        do { doc = try JSON.parse(body) } catch { throw KeystoneError("Keystone token response: \(error)") }
        guard let token = doc["token"] else { throw KeystoneError("Keystone token response has no \"token\"") }
        var lifetime: Int64? = nil
        if let e = token["expires_at"]?.string.flatMap(Timestamp.parse),
           let i = token["issued_at"]?.string.flatMap(Timestamp.parse), e >= i {
            lifetime = e - i
        }
        if let u = storageURL { return (Secret(t), u, lifetime) }
        guard let catalog = token["catalog"]?.array else {
            throw KeystoneError("Keystone token has no service catalog (is it scoped to a project?)")
        }
        let url = try KeystoneCredentials.objectStoreURL(catalog: catalog, region: region, interface: interface)
        return (Secret(t), url, lifetime)
    }

    /// The `object-store` endpoint of `interface` (in `region`, when given). Several distinct
    /// URLs without a region to choose is an error that names the regions.
    public static func objectStoreURL(catalog: [JSON], region: String?, interface: String) throws -> String {
        let services = catalog.filter { $0["type"]?.string == "object-store" }
        guard !services.isEmpty else {
            let types = catalog.compactMap { $0["type"]?.string }.joined(separator: ", ")
            throw KeystoneError("the Keystone catalog has no object-store service (it has: \(types.isEmpty ? "nothing" : types)); set OS_STORAGE_URL")
        }
        let endpoints = services.flatMap { $0["endpoints"]?.array ?? [] }
        func regionOf(_ e: JSON) -> String { e["region_id"]?.string ?? e["region"]?.string ?? "" }
        let matching = endpoints.filter { e in
            e["interface"]?.string == interface
                && (region == nil || e["region_id"]?.string == region || e["region"]?.string == region)
        }
        var urls: [String] = []
        for e in matching {
            if let u = e["url"]?.string, !urls.contains(u) { urls.append(u) }
        }
        if urls.count == 1 { return SwiftConfig.trimSlash(urls[0]) }
        let offered = endpoints.map { "\(regionOf($0))/\($0["interface"]?.string ?? "?")" }
        if urls.isEmpty {
            throw KeystoneError("no object-store endpoint for interface \(interface)\(region.map { " in region \($0)" } ?? "") (the catalog offers \(offered.joined(separator: ", ")))")
        }
        let regions = Set(matching.map(regionOf)).sorted().joined(separator: ", ")
        throw KeystoneError("several object-store endpoints for interface \(interface) (regions \(regions)): set OS_REGION_NAME")
    }
}

/// A token response that cannot be used.
public struct KeystoneError: Error, CustomStringConvertible, Sendable {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}
