/// A token and the account URL it is good for.
struct SwiftSession: Sendable {
    var token: Secret
    var storageURL: String
    /// Seconds since the epoch when the token expires, if the auth service said.
    var expires: Double?
    /// When it was issued (to renew a short-lived token in proportion to its life).
    var issued: Double = system_now()

    /// Whether to get a new token before the next request: within 30 s of the expiry, or
    /// within a tenth of the token's life if that is shorter.
    var isExpiring: Bool {
        guard let e = expires else { return false }
        let margin = min(SwiftAuth.expiryMargin, max(0, e - issued) / 10)
        return system_now() >= e - margin
    }
}

/// Gets and keeps a Swift token: one per process, reused for every request, renewed shortly
/// before it expires and (by `SwiftStore`) once after a 401.
final class SwiftAuth {
    let config: SwiftConfig
    let location: String
    let perform: (HTTPRequest) throws -> HTTPResponse
    private(set) var session: SwiftSession?
    /// Token requests made so far.
    private(set) var authentications = 0

    /// A token is renewed at most this many seconds before the expiry the auth service announced.
    static let expiryMargin = 30.0

    init(config: SwiftConfig, location: String, perform: @escaping (HTTPRequest) throws -> HTTPResponse) {
        self.config = config
        self.location = location
        self.perform = perform
        if let t = config.token, let u = config.storageURL {
            session = SwiftSession(token: t, storageURL: u, expires: nil)
        }
    }

    /// Whether a rejected token can be replaced.
    var canRenew: Bool { config.credentials != nil }

    /// The session to use now: the current one, or a new one if there is none or it is
    /// about to expire.
    func current() throws -> SwiftSession {
        if let s = session, !s.isExpiring { return s }
        return try renew()
    }

    /// Drops the current token and authenticates again.
    @discardableResult
    func renew() throws -> SwiftSession {
        session = nil
        guard let credentials = config.credentials else {
            throw StoreError(.permanent, "\(location): the token in OS_AUTH_TOKEN was rejected and no credentials are set to get another (\(SwiftConfig.variablesHelp))")
        }
        authentications += 1
        var s: SwiftSession
        switch credentials {
        case let .v1(authURL, user, key):
            s = try v1(authURL: authURL, user: user, key: key)
        case let .keystone(k):
            s = try keystone(k)
        }
        if let u = config.storageURL { s.storageURL = u }
        session = s
        return s
    }

    private func send(_ request: HTTPRequest, service: String) throws -> HTTPResponse {
        do {
            return try perform(request)
        } catch let e as HTTPError {
            throw StoreError(e.isTransient ? .transient : .permanent, "\(location): \(service): \(e)")
        }
    }

    private func failure(_ r: HTTPResponse, service: String, url: String, hint: String) -> StoreError {
        let detail = SwiftStore.errorDetail(r)
        switch r.status {
        case 401, 403:
            return StoreError(.permanent, "\(location): \(service) at \(url) refused the credentials (\(r.status)\(detail)): \(hint)")
        case 404:
            return StoreError(.permanent, "\(location): no \(service) at \(url) (404): check the URL")
        case 408, 429, 498, 500...599:
            return StoreError(.transient, "\(location): \(service) at \(url): \(r.status)\(detail)")
        default:
            return StoreError(.permanent, "\(location): \(service) at \(url): \(r.status)\(detail)")
        }
    }

    /// Swift v1 auth (tempauth, swauth, radosgw): `GET ST_AUTH` with `X-Auth-User` and
    /// `X-Auth-Key`; the answer's headers carry the token and the storage URL.
    private func v1(authURL: String, user: String, key: Secret) throws -> SwiftSession {
        let r = try send(HTTPRequest(method: "GET", url: authURL,
                                     headers: [("X-Auth-User", user), ("X-Auth-Key", key.value)]),
                         service: "v1 auth")
        guard r.isSuccess else {
            throw failure(r, service: "v1 auth", url: authURL, hint: "check ST_USER (\(user)) and ST_KEY")
        }
        guard let token = r.header("x-auth-token") ?? r.header("x-storage-token"), !token.isEmpty,
              let url = r.header("x-storage-url"), SwiftConfig.isHTTP(url) else {
            throw StoreError(.permanent, "\(location): v1 auth at \(authURL) answered \(r.status) without X-Auth-Token and X-Storage-Url")
        }
        let expires = r.header("x-auth-token-expires").flatMap(Double.init).map { system_now() + $0 }
        return SwiftSession(token: Secret(token), storageURL: SwiftConfig.trimSlash(url), expires: expires)
    }

    /// Keystone v3: `POST /v3/auth/tokens` with a password or application credential; the
    /// token is in `X-Subject-Token`, the storage URL in the catalog.
    private func keystone(_ k: KeystoneCredentials) throws -> SwiftSession {
        let url: String
        do { url = try k.tokenURL() } catch let e as ConfigError { throw StoreError(.permanent, "\(location): \(e)") }
        let r = try send(HTTPRequest(method: "POST", url: url,
                                     headers: [("Content-Type", "application/json"), ("Accept", "application/json")],
                                     body: .bytes(k.tokenRequestBody())),
                         service: "Keystone")
        guard r.status == 201 || r.status == 200 else {
            throw failure(r, service: "Keystone", url: url,
                          hint: "check OS_USERNAME (\(k.who)), OS_PASSWORD, the OS_*_DOMAIN_* and OS_PROJECT_* variables")
        }
        do {
            let t = try k.readToken(subjectToken: r.header("x-subject-token"), body: r.body, storageURL: config.storageURL)
            return SwiftSession(token: t.token, storageURL: t.storageURL, expires: t.lifetime.map { system_now() + Double($0) })
        } catch let e as KeystoneError {
            throw StoreError(.permanent, "\(location): Keystone at \(url): \(e)")
        }
    }
}
