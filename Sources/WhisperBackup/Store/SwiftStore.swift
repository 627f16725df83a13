#if canImport(Glibc)
import Glibc
#endif

/// An OpenStack Swift container (or radosgw's Swift API) over the project's one HTTP client.
///
/// - Uploads are single `PUT`s with an `ETag` (the body's MD5), so the cluster refuses (422)
///   a body that changed on the way (`putMany`: up to `--connections` in flight at once);
///   downloads are checked against the object's `ETag`.
/// - Listings are `format=json` pages by `prefix`, `limit` and `marker`, in the cluster's
///   ascending byte order (checked).
/// - Deletes use the `bulk` middleware when `/info` offers it (per-object errors are read;
///   an answer that is not a clean success is confirmed key by key), single `DELETE`s
///   otherwise or after a 405; a 404 is success.
/// - One token per process; on a 401 it authenticates again once, then fails clearly.
/// - No retries here: `RetryStore` retries what this store calls `.transient`.
public final class SwiftStore: Store {
    public let location: String
    let config: SwiftConfig
    let auth: SwiftAuth
    let perform: (HTTPRequest) throws -> HTTPResponse
    /// Requests sent with up to a number of them in flight at once (`HTTPClient.performMany`).
    let performMany: ([HTTPRequest], Int) -> [Result<HTTPResponse, Error>]

    /// What the cluster's `/info` says, once asked.
    struct Capabilities {
        /// Keys per bulk-delete request; nil without the bulk middleware.
        var bulkDeleteMax: Int?
        var listingLimit: Int?
    }
    private var capabilities: Capabilities?

    /// Objects per listing page, at most: at or under every known server's cap (Swift's
    /// `container_listing_limit` 10000; radosgw caps Swift listings at 1000 although its
    /// `/info` says 10000), so a short page always means the end of the listing.
    static let maxListLimit = 1000

    public init(config: SwiftConfig, location: String, perform: @escaping (HTTPRequest) throws -> HTTPResponse,
                performMany: (([HTTPRequest], Int) -> [Result<HTTPResponse, Error>])? = nil) {
        self.config = config
        self.location = location
        self.perform = perform
        self.performMany = performMany ?? { requests, _ in requests.map { r in Result { try perform(r) } } }
        auth = SwiftAuth(config: config, location: location, perform: perform)
    }

    /// Token requests made so far (for tests and counts).
    public var authentications: Int { auth.authentications }

    // MARK: Requests

    var containerPath: String { "/" + SwiftStore.encode(config.container, keepSlash: false) }

    func objectPath(_ key: String) -> String { containerPath + "/" + SwiftStore.encode(key, keepSlash: true) }

    /// Sends a request to the account URL + `path` with the token; a 401 gets one new token
    /// and one resend. Transport failures become `StoreError`s.
    func send(_ method: String, _ path: String, query: String = "", headers: [(name: String, value: String)] = [],
              body: HTTPBody = .empty, responseFile: String? = nil, what: String) throws -> HTTPResponse {
        var renewed = false
        while true {
            let request = try self.request(method, path, query: query, headers: headers, body: body, responseFile: responseFile)
            let r = try response(Result { try perform(request) }, what: what)
            if r.status == 401 {
                try renewAfter401(renewed, what: what)
                renewed = true
                continue
            }
            return r
        }
    }

    /// A request to the account URL + `path`, with the current token.
    func request(_ method: String, _ path: String, query: String = "", headers: [(name: String, value: String)] = [],
                 body: HTTPBody = .empty, responseFile: String? = nil) throws -> HTTPRequest {
        let session = try auth.current()
        return HTTPRequest(method: method, url: session.storageURL + path + (query.isEmpty ? "" : "?" + query),
                           headers: [("X-Auth-Token", session.token.value)] + headers, body: body, responseFile: responseFile)
    }

    /// After a 401: a first one gets a new token; a second (or one with nothing to renew
    /// with) is a permanent failure.
    private func renewAfter401(_ alreadyRenewed: Bool, what: String) throws {
        if alreadyRenewed {
            throw StoreError(.permanent, "\(location): \(what): unauthorized (401) even with a new token: the account may not allow this")
        }
        if !auth.canRenew {
            throw StoreError(.permanent, "\(location): \(what): the token in OS_AUTH_TOKEN was rejected (401) and no credentials are set to get another")
        }
        try auth.renew()
    }

    /// A failed response as a `StoreError` of the right kind.
    func failure(_ r: HTTPResponse, _ what: String) -> StoreError {
        let detail = SwiftStore.errorDetail(r)
        if r.status == 403 {
            return StoreError(.permanent, "\(location): \(what): access denied (403\(detail)): this user may not do that in container \(config.container); grant it in the container's ACL (X-Container-Read/X-Container-Write) or give the user a role that may (or use another container or user)")
        }
        return StoreError(SwiftStore.kind(ofStatus: r.status), "\(location): \(what): \(r.status)\(detail)")
    }

    /// 404 is not-found; timeouts, conflicts, rate limits (429, Swift's 498) and 5xx may pass;
    /// anything else (403, 400, 411, 413...) will not.
    static func kind(ofStatus status: Int) -> StoreError.Kind {
        switch status {
        case 404: return .notFound
        case 408, 409, 429, 498, 499, 500...599: return .transient
        default: return .permanent
        }
    }

    /// ` text` from an error response (an OpenStack JSON error's message, or the first line
    /// of the body with visible text, tags stripped; short), or "". A server that echoes the
    /// request back shows its first line only, never the headers that follow.
    static func errorDetail(_ r: HTTPResponse) -> String {
        if r.body.first == UInt8(ascii: "{"), let doc = try? JSON.parse(r.body),
           let message = doc["error"]?["message"]?.string ?? doc["message"]?.string {
            return " " + String(message.split(whereSeparator: \.isNewline).joined(separator: " ").prefix(200))
        }
        var text = ""
        var inTag = false
        for c in r.bodyText.prefix(600) {
            if c == "<" { inTag = true; text += " "; continue }
            if c == ">" { inTag = false; continue }
            if c.isNewline && !inTag && text.contains(where: { !$0.isWhitespace }) { break }
            if !inTag { text.append(c.isNewline || c == "\t" ? " " : c) }
        }
        let words = text.split(separator: " ")
        let short = words.joined(separator: " ")
        return short.isEmpty ? "" : " " + String(short.prefix(200))
    }

    // MARK: Container

    /// Authenticates and checks the container; a missing one is `.notFound`.
    public func prepare() throws {
        let r = try send("HEAD", containerPath, what: "container \(config.container)")
        if r.isSuccess { return }
        guard r.status == 404 else { throw failure(r, "container \(config.container)") }
        let account = auth.session?.storageURL ?? "the account"
        throw StoreError(.notFound, "\(location): container \(config.container) does not exist in \(account) (create it, or pass --create-container)")
    }

    public func create() throws {
        let c = try send("PUT", containerPath, what: "create container \(config.container)")
        guard c.isSuccess else { throw failure(c, "create container \(config.container)") }
    }

    // MARK: Store

    public func put(_ key: String, body: StoreBody) throws {
        let (headers, httpBody, md5) = try putParts(body)
        try checkPut(key, md5: md5, try send("PUT", objectPath(key), headers: headers, body: httpBody, what: "PUT \(key)"))
    }

    /// Puts a batch with up to `config.connections` PUTs in flight at once, each checked as
    /// `put` does. Uploads refused for their token (401: it expired while they were in
    /// flight) go again together, after one new token; a second 401 fails them.
    public func putMany(_ items: [(key: String, body: StoreBody)]) -> [Error?] {
        var results = putBatch(items, renewed: false)
        let refused = results.indices.filter { results[$0] is TokenRefused }
        if refused.isEmpty { return results }
        do {
            try renewAfter401(false, what: "PUT \(items[refused[0]].key)")
            for (i, e) in zip(refused, putBatch(refused.map { items[$0] }, renewed: true)) { results[i] = e }
        } catch {
            for i in refused { results[i] = error }
        }
        return results
    }

    /// A 401 to an upload of a batch, before the token was renewed.
    private struct TokenRefused: Error {}

    private func putBatch(_ items: [(key: String, body: StoreBody)], renewed: Bool) -> [Error?] {
        ConcurrentPuts.run(items, width: config.connections, send: performMany, prepare: { key, body in
            let (headers, httpBody, md5) = try self.putParts(body)
            return (try self.request("PUT", self.objectPath(key), headers: headers, body: httpBody), md5)
        }, check: { key, md5, result in
            let r = try self.response(result, what: "PUT \(key)")
            if r.status == 401 {
                if !renewed { throw TokenRefused() }
                try self.renewAfter401(true, what: "PUT \(key)")
            }
            try self.checkPut(key, md5: md5, r)
        })
    }

    /// The headers and body of a PUT, and the body's MD5.
    private func putParts(_ body: StoreBody) throws -> ([(name: String, value: String)], HTTPBody, String) {
        let md5: String, httpBody: HTTPBody
        switch body {
        case .bytes(let b):
            md5 = Hex.encode(Digest.hash(.md5, b))
            httpBody = .bytes(b)
        case .file(let path), .spoolFile(let path):
            md5 = try SwiftStore.md5(ofFile: path, location: location)
            httpBody = .file(path)
        }
        return ([("ETag", md5), ("Content-Type", "application/octet-stream")], httpBody, md5)
    }

    /// Whether the answer to the PUT of `key` says the object holds the bytes sent.
    private func checkPut(_ key: String, md5: String, _ r: HTTPResponse) throws {
        let what = "PUT \(key)"
        switch r.status {
        case 200..<300:
            if let etag = r.header("etag").map(SwiftStore.unquote), etag.lowercased() != md5 {
                // Never keep what failed its check: a listing would offer it as a stored version.
                let removed = removeFailedUpload(key)
                throw StoreError(.transient, "\(location): \(what): stored ETag \(etag) is not the MD5 sent (\(md5)); \(removed)")
            }
        case 404:
            throw StoreError(.permanent, "\(location): \(what): container \(config.container) does not exist")
        case 422:
            throw StoreError(.transient, "\(location): \(what): the cluster refused the upload (422): its MD5 is not \(md5); the body changed in transit")
        default:
            throw failure(r, what)
        }
    }

    /// Deletes an object whose upload failed its check; says what became of it.
    func removeFailedUpload(_ key: String) -> String {
        do {
            let r = try send("DELETE", objectPath(key), what: "DELETE \(key)")
            if r.isSuccess || r.status == 404 { return "the object was deleted" }
            return "deleting the object failed too (\(failure(r, "DELETE \(key)").message)): delete it before the next push"
        } catch {
            return "deleting the object failed too (\(error)): delete it before the next push"
        }
    }

    public func get(_ key: String, to path: String) throws {
        let what = "GET \(key)"
        let r = try send("GET", objectPath(key), responseFile: path, what: what)
        guard r.isSuccess else {
            if r.status == 404 { throw StoreError(.notFound, "\(location): \(key): no such object") }
            throw failure(r, what)
        }
        // A plain object's ETag is its MD5; large-object manifests (never written here)
        // have a quoted ETag of their segments, which is not checked.
        if let got = r.bodyMD5, let etag = r.header("etag"), Hex.isHex(Substring(etag), length: 32),
           r.header("x-static-large-object") == nil, r.header("x-object-manifest") == nil,
           Hex.encode(got) != etag {
            throw StoreError(.transient, "\(location): \(what): downloaded bytes have MD5 \(Hex.encode(got)), the object's ETag is \(etag)")
        }
    }

    public func head(_ key: String) throws -> StoreObject? {
        let what = "HEAD \(key)"
        let r = try send("HEAD", objectPath(key), what: what)
        if r.status == 404 { return nil }
        guard r.isSuccess else { throw failure(r, what) }
        return StoreObject(key: key, size: r.header("content-length").flatMap { Int64($0) } ?? 0)
    }

    public var listsRanges: Bool { true }

    /// Sizes come with the listing: `sizes` changes nothing.
    public func list(prefix: String, startAfter: String?, sizes: Bool, _ each: (StoreObject) throws -> Void) throws {
        let limit = try listLimit()
        var marker: String? = startAfter
        let what = "list \(prefix.isEmpty ? "(all)" : prefix)"
        while true {
            var query = "format=json&limit=\(limit)"
            if !prefix.isEmpty { query += "&prefix=" + SwiftStore.encode(prefix, keepSlash: false) }
            if let m = marker { query += "&marker=" + SwiftStore.encode(m, keepSlash: false) }
            let r = try send("GET", containerPath, query: query, headers: [("Accept", "application/json")], what: what)
            if r.status == 404 {
                throw StoreError(.notFound, "\(location): container \(config.container) does not exist")
            }
            guard r.isSuccess else { throw failure(r, what) }
            let page = try SwiftStore.parseListing(r.body, location: location)
            for obj in page {
                // Ascending and past the marker: anything else could loop or skip keys.
                if let m = marker, !m.utf8.lexicographicallyPrecedes(obj.key.utf8) {
                    throw StoreError(.permanent, "\(location): \(what): listing out of order (\(obj.key) after \(m))")
                }
                guard obj.key.hasPrefix(bytes: prefix) else {
                    throw StoreError(.permanent, "\(location): \(what): listing returned \(obj.key) outside the prefix")
                }
                try each(obj)
                marker = obj.key
            }
            if page.count > limit {
                throw StoreError(.permanent, "\(location): \(what): a page of \(page.count) objects for limit \(limit)")
            }
            if page.count < limit { return }
        }
    }

    public func delete(_ keys: [String]) throws -> [(key: String, error: Error)] {
        if keys.isEmpty { return [] }
        if keys.count > 1, !bulkDeleteUnsupported, let max = try bulkDeleteMax() {
            var failed: [(key: String, error: Error)] = []
            var start = 0
            while start < keys.count && !bulkDeleteUnsupported {
                let chunk = Array(keys[start..<min(keys.count, start + max)])
                guard let f = try bulkDelete(chunk) else { break }
                failed += f
                start += chunk.count
            }
            return failed + deleteEach(Array(keys[start...]))
        }
        return deleteEach(keys)
    }

    /// One `DELETE` per key; a 404 is success.
    private func deleteEach(_ keys: [String]) -> [(key: String, error: Error)] {
        var failed: [(key: String, error: Error)] = []
        for key in keys {
            do {
                let r = try send("DELETE", objectPath(key), what: "DELETE \(key)")
                if !r.isSuccess && r.status != 404 { failed.append((key, failure(r, "DELETE \(key)"))) }
            } catch {
                failed.append((key, error))
            }
        }
        return failed
    }

    /// Set once the cluster answered a bulk delete with 405/501: single deletes from then on.
    private(set) var bulkDeleteUnsupported = false

    /// One `POST ?bulk-delete`; nil when the cluster does not take it (405, 501). The HTTP
    /// status is 200 once the middleware starts; the outcome is in the JSON body. Its verdicts
    /// are taken as they are only when they account for every key (`Number Deleted`, `Number
    /// Not Found` and `Errors` add up to the keys sent): otherwise (say "Max delete failures
    /// exceeded", which stops before the keys after the failures) the keys not named as failed
    /// are deleted one by one, so that a delete is reported only when the cluster confirmed
    /// it. Per-object 401s (an expired token) get one new token and one resend of those keys.
    private func bulkDelete(_ keys: [String], renewed: Bool = false) throws -> [(key: String, error: Error)]? {
        var byLine: [String: String] = [:]
        var body = ""
        for k in keys {
            let line = containerPath + "/" + SwiftStore.encode(k, keepSlash: true)
            byLine[line] = k
            body += line + "\n"
        }
        let what = "bulk delete of \(keys.count) objects"
        let r = try send("POST", "", query: "bulk-delete",
                         headers: [("Content-Type", "text/plain"), ("Accept", "application/json")],
                         body: .bytes(Array(body.utf8)), what: what)
        if r.status == 405 || r.status == 501 {
            bulkDeleteUnsupported = true
            return nil
        }
        guard r.isSuccess else {
            let e = failure(r, what)
            return keys.map { ($0, e as Error) }
        }
        let result = try SwiftStore.parseBulkDelete(r.body, location: location)
        var failed: [(key: String, error: Error)] = []
        var unauthorized: [String] = []
        var named: Set<String> = []
        for (name, status) in result.errors {
            let key = byLine[name] ?? byLine[SwiftStore.encode(SwiftStore.decode(name), keepSlash: true)] ?? SwiftStore.decode(name)
            named.insert(key)
            let code = Int(status.prefix(3)) ?? 0
            if code == 404 { continue }
            if code == 401 { unauthorized.append(key); continue }
            failed.append((key, StoreError(SwiftStore.kind(ofStatus: code), "\(location): delete \(key): \(status)")))
        }
        // The answer accounts for every key when its counts and errors add up to the keys
        // sent (or, without counts, when it is a plain success); otherwise what it does not
        // name as failed is confirmed (or found undeletable) one by one.
        let accounted = result.deleted.map { $0 + (result.notFound ?? 0) + result.errors.count == keys.count }
            ?? (Int(result.status.prefix(3)).map { (200..<300).contains($0) } == true && result.errors.isEmpty)
        if !accounted {
            failed += deleteEach(keys.filter { !named.contains($0) })
        }
        if unauthorized.isEmpty { return failed }
        do {
            try renewAfter401(renewed, what: "delete")
        } catch {
            return failed + unauthorized.map { ($0, error) }
        }
        return failed + (try bulkDelete(unauthorized, renewed: true) ?? deleteEach(unauthorized))
    }

    // MARK: Cluster capabilities

    /// `/info` beside the account URL's `/v1/` (or at the host's root).
    static func infoURL(storageURL: String) -> String {
        if let r = storageURL.firstRange(of: "/v1/") ?? (storageURL.hasSuffix("/v1") ? storageURL.ranges(of: "/v1").last : nil) {
            return String(storageURL[..<r.lowerBound]) + "/info"
        }
        let afterScheme = storageURL.firstRange(of: "://").map { $0.upperBound } ?? storageURL.startIndex
        let hostEnd = storageURL[afterScheme...].firstIndex(of: "/") ?? storageURL.endIndex
        return String(storageURL[..<hostEnd]) + "/info"
    }

    private func loadCapabilities() throws -> Capabilities {
        if let c = capabilities { return c }
        var c = Capabilities()
        let url = SwiftStore.infoURL(storageURL: try auth.current().storageURL)
        // /info needs no token. A cluster without it (or a failure to read it) simply
        // gets single deletes and the default page size.
        if let r = try? perform(HTTPRequest(method: "GET", url: url, headers: [("Accept", "application/json")])),
           r.isSuccess, let doc = try? JSON.parse(r.body) {
            if let bulk = doc["bulk_delete"] {
                c.bulkDeleteMax = max(1, Int(bulk["max_deletes_per_request"]?.int64 ?? 1000))
            }
            c.listingLimit = doc["swift"]?["container_listing_limit"]?.int64.map { Int($0) }
        }
        capabilities = c
        return c
    }

    private func bulkDeleteMax() throws -> Int? {
        guard let m = try loadCapabilities().bulkDeleteMax else { return nil }
        return min(m, 1000)
    }

    private func listLimit() throws -> Int {
        var limit = min(config.listLimit ?? SwiftStore.maxListLimit, SwiftStore.maxListLimit)
        if let server = try loadCapabilities().listingLimit, server > 0 { limit = min(limit, server) }
        return limit
    }

    // MARK: Wire formats

    /// A `format=json` container listing page: objects (and `subdir` entries, skipped).
    static func parseListing(_ body: [UInt8], location: String) throws -> [StoreObject] {
        if body.allSatisfy({ $0 == 0x20 || $0 == 0x0A || $0 == 0x0D }) { return [] }
        let doc: JSON
        do { doc = try JSON.parse(body) } catch {
            throw StoreError(.transient, "\(location): container listing: \(error)")
        }
        guard let items = doc.array else {
            throw StoreError(.permanent, "\(location): container listing is not a JSON array")
        }
        var out: [StoreObject] = []
        out.reserveCapacity(items.count)
        for item in items {
            guard let name = item["name"]?.string else {
                if item["subdir"] != nil { continue }
                throw StoreError(.permanent, "\(location): container listing entry without a name")
            }
            out.append(StoreObject(key: name, size: item["bytes"]?.int64 ?? 0))
        }
        return out
    }

    /// The JSON result of a bulk delete: overall status, message, and `[name, status]` errors.
    static func parseBulkDelete(_ body: [UInt8], location: String) throws
        -> (status: String, body: String, errors: [(String, String)], deleted: Int?, notFound: Int?) {
        let doc: JSON
        do { doc = try JSON.parse(body) } catch {
            throw StoreError(.transient, "\(location): bulk delete result: \(error)")
        }
        guard let status = doc["Response Status"]?.string else {
            throw StoreError(.permanent, "\(location): bulk delete result has no Response Status")
        }
        var errors: [(String, String)] = []
        for e in doc["Errors"]?.array ?? [] {
            if let pair = e.array, pair.count >= 2, let name = pair[0].string, let st = pair[1].string {
                errors.append((name, st))
            }
        }
        return (status, doc["Response Body"]?.string ?? "", errors,
                doc["Number Deleted"]?.int64.map { Int($0) }, doc["Number Not Found"]?.int64.map { Int($0) })
    }

    // MARK: Helpers

    private static let unreserved: [Bool] = (0..<256).map { b in
        (b >= 0x30 && b <= 0x39) || (b >= 0x41 && b <= 0x5A) || (b >= 0x61 && b <= 0x7A)
            || b == 0x2D || b == 0x2E || b == 0x5F || b == 0x7E
    }

    /// Percent-encodes every byte but the unreserved ones (and "/" with `keepSlash`).
    static func encode(_ s: String, keepSlash: Bool) -> String {
        let hex = Array("0123456789ABCDEF".utf8)
        var out: [UInt8] = []
        out.reserveCapacity(s.utf8.count)
        for b in s.utf8 {
            if unreserved[Int(b)] || (keepSlash && b == 0x2F) {
                out.append(b)
            } else {
                out += [0x25, hex[Int(b >> 4)], hex[Int(b & 15)]]
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// Undoes percent-encoding (invalid escapes are kept as they are).
    static func decode(_ s: String) -> String {
        let u = Array(s.utf8)
        var out: [UInt8] = []
        var i = 0
        func val(_ c: UInt8) -> UInt8? {
            switch c {
            case 0x30...0x39: return c - 0x30
            case 0x41...0x46: return c - 0x41 + 10
            case 0x61...0x66: return c - 0x61 + 10
            default: return nil
            }
        }
        while i < u.count {
            if u[i] == 0x25, i + 2 < u.count, let h = val(u[i + 1]), let l = val(u[i + 2]) {
                out.append(h << 4 | l)
                i += 3
            } else {
                out.append(u[i])
                i += 1
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    static func unquote(_ s: String) -> String {
        s.count >= 2 && s.hasPrefix("\"") && s.hasSuffix("\"") ? String(s.dropFirst().dropLast()) : s
    }

    static func md5(ofFile path: String, location: String) throws -> String {
        do {
            let fd = try FileDescriptor.open(path, O_RDONLY)
            return try fd.closeAfter {
                var d = Digest(.md5)
                try fd.forEachChunk { d.update($0) }
                return Hex.encode(d.finish())
            }
        } catch {
            throw StoreError(.permanent, "\(location): reading \(path): \(error)")
        }
    }
}
