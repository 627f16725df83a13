#if canImport(Glibc)
import Glibc
#endif

/// An S3 bucket (AWS, or an S3-compatible server: Ceph RGW, MinIO, GCS's XML API, Swift's
/// s3api), keys under a prefix. Requests are signed with SigV4 and sent through one
/// kept-alive `HTTPClient`.
///
/// - `put`: one PUT with `Content-MD5` and the payload's SHA-256 (the server checks both);
///   the returned ETag must be the MD5 sent. An S3 PUT is atomic. `putMany` keeps up to
///   `--connections` of them in flight at once.
/// - `get`: the body streams into the file; its length and, for plain objects, its MD5
///   against the ETag are checked, and a mismatch is a transient error (retried).
/// - `list`: ListObjectsV2 pages of up to 1000 keys, followed by continuation token; a
///   truncated page without a token, a token given before, 1000 truncated pages in a row
///   without a key, or keys out of order fail.
/// - `delete`: DeleteObjects in batches of 1000 (with `Content-MD5`), reading the per-key
///   errors of the 200 answer; a missing key counts as deleted. A server without
///   DeleteObjects (GCS's XML API) gets one DELETE per key.
///
/// Errors are classified here: 404 NoSuchKey is `.notFound`; connection errors, 429, 5xx,
/// SlowDown and damaged transfers are `.transient`; everything else is `.permanent`, with a
/// message naming the store and the cause (wrong credentials, clock skew, access denied,
/// missing bucket, wrong region).
public final class S3Store: Store {
    public let config: S3Config
    public var location: String { config.location }
    let http: HTTPClient
    let signer: SigV4

    public init(config: S3Config) throws {
        self.config = config
        do {
            http = try HTTPClient(options: config.httpOptions)
        } catch {
            throw ConfigError("\(config.location): \(error)")
        }
        signer = SigV4(credentials: config.credentials, region: config.region)
    }

    /// HTTP requests sent so far (every attempt counts).
    public var requestCount: Int { http.requestCount }

    // MARK: Store

    public func put(_ key: String, body: StoreBody) throws {
        let (request, md5) = try putRequest(key, body: body)
        try checkPut(key, md5: md5, try perform(request, what: "PUT \(key)"))
    }

    /// Puts a batch with up to `config.connections` PUTs in flight at once, each made and
    /// checked as `put` does.
    public func putMany(_ items: [(key: String, body: StoreBody)]) -> [Error?] {
        ConcurrentPuts.run(items, width: config.connections, send: http.performMany,
                           prepare: putRequest, check: { key, md5, result in
            try self.checkPut(key, md5: md5, try self.response(result, what: "PUT \(key)"))
        })
    }

    /// The signed PUT of `key`, and the MD5 of its body.
    func putRequest(_ key: String, body: StoreBody) throws -> (HTTPRequest, [UInt8]) {
        let (md5, sha256) = try S3Store.digests(of: body, location: location)
        let headers = [("Content-MD5", Base64.encode(md5)),
                       ("Content-Type", key.hasSuffix(".gz") ? "application/gzip" : "application/octet-stream")]
        let httpBody: HTTPBody
        switch body {
        case .file(let path), .spoolFile(let path): httpBody = .file(path)
        case .bytes(let b): httpBody = .bytes(b)
        }
        return (request("PUT", key: key, headers: headers, body: httpBody, payloadHash: Hex.encode(sha256)), md5)
    }

    /// Whether the answer to the PUT of `key` says the object holds the bytes sent.
    func checkPut(_ key: String, md5: [UInt8], _ r: HTTPResponse) throws {
        guard r.isSuccess else { throw failure(r, what: "PUT \(key)").error }
        if let etag = S3Store.plainETag(r), etag != Hex.encode(md5) {
            // Never keep what failed its check: a listing would offer it as a stored version.
            let removed = removeFailedUpload(key)
            throw StoreError(.transient, "\(location): PUT \(key): the server's ETag \(etag) is not the MD5 of the bytes sent; \(removed)")
        }
    }

    /// Deletes an object whose upload failed its check; says what became of it.
    func removeFailedUpload(_ key: String) -> String {
        do {
            let r = try send("DELETE", key: key, what: "DELETE \(key)")
            if r.isSuccess || r.status == 404 { return "the object was deleted" }
            return "deleting the object failed too (\(failure(r, what: "DELETE \(key)").error.message)): delete it before the next push"
        } catch {
            return "deleting the object failed too (\(error)): delete it before the next push"
        }
    }

    public func get(_ key: String, to path: String) throws {
        let r = try send("GET", key: key, responseFile: path, what: "GET \(key)")
        guard r.isSuccess else { throw failure(r, what: "GET \(key)").error }
        if let length = r.header("content-length").flatMap({ Int64($0) }), length != r.bodyBytes {
            throw StoreError(.transient, "\(location): GET \(key): got \(r.bodyBytes) of \(length) bytes")
        }
        if let etag = S3Store.plainETag(r), let md5 = r.bodyMD5, etag != Hex.encode(md5) {
            throw StoreError(.transient, "\(location): GET \(key): the bytes received do not match the object's ETag")
        }
    }

    public func head(_ key: String) throws -> StoreObject? {
        let r = try send("HEAD", key: key, what: "HEAD \(key)")
        if r.status == 404 { return nil }
        guard r.isSuccess else { throw failure(r, what: "HEAD \(key)").error }
        return StoreObject(key: key, size: r.header("content-length").flatMap { Int64($0) } ?? 0)
    }

    public var listsRanges: Bool { true }

    /// Sizes come with the listing: `sizes` changes nothing.
    public func list(prefix: String, startAfter: String?, sizes: Bool, _ each: (StoreObject) throws -> Void) throws {
        var token: String? = nil
        var last: String? = nil
        var seen: Set<String> = []
        var emptyPages = 0
        repeat {
            var query = [("list-type", "2"), ("prefix", prefix), ("encoding-type", "url")]
            if let token {
                query.append(("continuation-token", token))
            } else if let startAfter {
                query.append(("start-after", startAfter))
            }
            let what = "list \(prefix.isEmpty ? "(all)" : prefix)"
            let r = try send("GET", key: nil, query: query, what: what)
            guard r.isSuccess else { throw failure(r, what: what).error }
            let page: ListPage
            do {
                page = try S3Store.parseListing(r.body)
            } catch {
                throw StoreError(.transient, "\(location): \(what): unreadable answer: \(error)")
            }
            for obj in page.objects where obj.key.hasPrefix(bytes: prefix) && startAfter.map({ $0.utf8.lexicographicallyPrecedes(obj.key.utf8) }) != false {
                if let l = last, !l.utf8.lexicographicallyPrecedes(obj.key.utf8) {
                    throw StoreError(.permanent, "\(location): \(what): the server listed \(obj.key) after \(l), out of order")
                }
                last = obj.key
                try each(obj)
            }
            guard page.isTruncated else { break }
            guard let next = page.nextToken, !next.isEmpty else {
                throw StoreError(.permanent, "\(location): \(what): a truncated listing page came without a continuation token")
            }
            // Every token of this listing is remembered: one that comes back (A, B, A...)
            // would make the listing go round for ever.
            guard seen.insert(next).inserted else {
                throw StoreError(.permanent, "\(location): \(what): the listing went round: the server gave a continuation token it had given before (after \(seen.count) pages)")
            }
            emptyPages = page.objects.isEmpty ? emptyPages + 1 : 0
            guard emptyPages < S3Store.maxEmptyPages else {
                throw StoreError(.permanent, "\(location): \(what): \(emptyPages) truncated listing pages in a row without a key")
            }
            token = next
        } while true
    }

    public func delete(_ keys: [String]) throws -> [(key: String, error: Error)] {
        if keys.isEmpty { return [] }
        var failed: [(key: String, error: Error)] = []
        // XML 1.0 cannot carry most control characters: such keys go one DELETE each, as do
        // all keys on a server without DeleteObjects (GCS's XML API).
        let batchable = keys.filter { XMLReader.canRepresent($0) }
        var single = keys.filter { !XMLReader.canRepresent($0) }
        var start = 0
        while start < batchable.count && !multiDeleteUnsupported {
            let batch = Array(batchable[start..<min(start + S3Store.deleteBatch, batchable.count)])
            guard let f = try deleteObjects(batch) else { break }
            failed += f
            start += batch.count
        }
        single += batchable[start...]
        for key in single {
            let r = try send("DELETE", key: key, what: "DELETE \(key)")
            if r.isSuccess { continue }
            let f = failure(r, what: "DELETE \(key)")
            if r.status == 404 && f.code != "NoSuchBucket" { continue }
            failed.append((key, f.error))
        }
        return failed
    }

    /// Truncated pages without a key, in a row, before a listing is given up.
    static let maxEmptyPages = 1000

    /// Set once the server answered that it does not do DeleteObjects.
    private(set) var multiDeleteUnsupported = false

    /// Keys per DeleteObjects request (the S3 limit).
    static let deleteBatch = 1000

    /// One DeleteObjects request; nil when the server does not support it.
    func deleteObjects(_ keys: [String]) throws -> [(key: String, error: Error)]? {
        var xml = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Delete xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Quiet>true</Quiet>"
        for k in keys { xml += "<Object><Key>\(XMLReader.escape(k))</Key></Object>" }
        xml += "</Delete>"
        let body = Array(xml.utf8)
        let what = "delete \(keys.count) key(s)"
        let r = try send("POST", key: nil, query: [("delete", "")],
                         headers: [("Content-MD5", Base64.encode(Digest.hash(.md5, body))), ("Content-Type", "application/xml")],
                         body: .bytes(body), payloadHash: Digest.sha256Hex(body), what: what)
        guard r.isSuccess else {
            let f = failure(r, what: what)
            if r.status == 501 || r.status == 405
                || (r.status == 400 && ["NotImplemented", "InvalidArgument", "InvalidRequest", "UnsupportedOperation"].contains(f.code)) {
                multiDeleteUnsupported = true
                return nil
            }
            throw f.error
        }
        let root: XMLElement
        do {
            root = try XMLReader.parse(r.body)
        } catch {
            throw StoreError(.transient, "\(location): \(what): unreadable answer: \(error)")
        }
        // Some servers answer a 200 whose body is an error document.
        if root.name == "Error" { throw classify(status: 500, code: root["Code"] ?? "", message: root["Message"] ?? "", what: what).error }
        var failed: [(key: String, error: Error)] = []
        for e in root.all("Error") {
            let code = e["Code"] ?? ""
            guard let key = e["Key"], code != "NoSuchKey" else { continue }
            let kind: StoreError.Kind = S3Store.transientCodes.contains(code) ? .transient : .permanent
            failed.append((key, StoreError(kind, "\(location): DELETE \(key): \(code.isEmpty ? "failed" : code)\(S3Store.clause(config.credentials.redact(e["Message"] ?? "")))")))
        }
        return failed
    }

    // MARK: Bucket

    /// Checks the bucket exists and the credentials work with one listing request of at most
    /// one key under the prefix; a missing bucket is `.notFound`.
    public func prepare() throws {
        let query = [("list-type", "2"), ("max-keys", "1"), ("prefix", config.prefix), ("encoding-type", "url")]
        let r = try send("GET", key: nil, query: query, what: "list")
        if r.isSuccess { return }
        let f = failure(r, what: "list")
        throw f.code == "NoSuchBucket" ? StoreError(.notFound, f.error.message) : f.error
    }

    public func create() throws { try createBucket() }

    func createBucket() throws {
        var body: [UInt8] = []
        // AWS wants the region named outside us-east-1; other servers use their own default.
        if config.isAWS && config.region != "us-east-1" {
            body = Array("<CreateBucketConfiguration xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><LocationConstraint>\(XMLReader.escape(config.region))</LocationConstraint></CreateBucketConfiguration>".utf8)
        }
        let r = try send("PUT", key: nil, headers: body.isEmpty ? [] : [("Content-Type", "application/xml")],
                         body: .bytes(body), payloadHash: Digest.sha256Hex(body), what: "create bucket \(config.bucket)")
        if r.isSuccess { return }
        let f = failure(r, what: "create bucket \(config.bucket)")
        if f.code == "BucketAlreadyOwnedByYou" { return }
        throw f.error
    }

    // MARK: Requests

    /// Signs and sends one request; a transfer failure becomes a classified `StoreError`.
    func send(_ method: String, key: String?, query: [(name: String, value: String)] = [],
              headers: [(name: String, value: String)] = [], body: HTTPBody = .empty,
              payloadHash: String = SigV4.emptyPayloadHash, responseFile: String? = nil, what: String) throws -> HTTPResponse {
        try perform(request(method, key: key, query: query, headers: headers, body: body, payloadHash: payloadHash,
                            responseFile: responseFile), what: what)
    }

    /// A signed request.
    func request(_ method: String, key: String?, query: [(name: String, value: String)] = [],
                 headers: [(name: String, value: String)] = [], body: HTTPBody = .empty,
                 payloadHash: String = SigV4.emptyPayloadHash, responseFile: String? = nil) -> HTTPRequest {
        let host: String, path: String
        if config.pathStyle {
            host = config.endpoint.authority
            path = "/" + config.bucket + (key.map { "/" + $0 } ?? "")
        } else {
            host = config.bucket + "." + config.endpoint.authority
            path = "/" + (key ?? "")
        }
        let signed = signer.sign(method: method, path: path, query: query, headers: [("Host", host)] + headers,
                                 payloadHash: payloadHash, time: Int64(system_now()))
        var url = config.endpoint.scheme + "://" + host + signed.encodedPath
        if !signed.encodedQuery.isEmpty { url += "?" + signed.encodedQuery }
        return HTTPRequest(method: method, url: url, headers: signed.headers, body: body, responseFile: responseFile)
    }

    func perform(_ request: HTTPRequest, what: String) throws -> HTTPResponse {
        try response(Result { try http.perform(request) }, what: what)
    }

    static let transientCodes: Set<String> = [
        "SlowDown", "InternalError", "ServiceUnavailable", "RequestTimeout", "OperationAborted",
        "BadDigest", "XAmzContentSHA256Mismatch", "IncompleteBody", "RequestTimeoutException",
        "ThrottlingException", "Throttling", "TooManyRequests",
    ]

    /// The error a non-2xx answer means, with the S3 error code it carried.
    func failure(_ r: HTTPResponse, what: String) -> (code: String, error: StoreError) {
        let doc = r.body.isEmpty ? nil : try? XMLReader.parse(r.body)
        if doc == nil && r.body.starts(with: Array("<?xml".utf8)) {
            // An XML error cut short in transit: its code is unknown, so is what it meant.
            return ("", StoreError(.transient, "\(location): \(what): HTTP \(r.status) with an unreadable error answer"))
        }
        var message = doc?["Message"] ?? ""
        if let region = doc?["Region"] ?? r.header("x-amz-bucket-region"), !region.isEmpty { message += " (bucket region: \(region))" }
        return classify(status: r.status, code: doc?["Code"] ?? "", message: message, what: what)
    }

    func classify(status: Int, code: String, message rawMessage: String, what: String) -> (code: String, error: StoreError) {
        let message = config.credentials.redact(rawMessage)
        let head = "\(location): \(what)"
        func err(_ kind: StoreError.Kind, _ text: String) -> (code: String, error: StoreError) {
            (code, StoreError(kind, "\(head): \(text)"))
        }
        switch (status, code) {
        case (_, "NoSuchBucket"):
            return err(.permanent, "bucket \(config.bucket) does not exist (create it, or pass --create-bucket)")
        case (404, _):
            return err(.notFound, "no such object")
        case (_, "SignatureDoesNotMatch"):
            return err(.permanent, "wrong credentials: the signature does not match; check the secret key (AWS_SECRET_ACCESS_KEY or the profile) (SignatureDoesNotMatch)")
        case (_, "InvalidAccessKeyId"):
            return err(.permanent, "wrong credentials: the server does not know this access key ID (InvalidAccessKeyId)")
        case (_, "RequestTimeTooSkewed"):
            return err(.permanent, "clock skew: this machine's clock is too far from the server's; set it (NTP) and retry (RequestTimeTooSkewed)")
        case (_, "ExpiredToken"), (_, "InvalidToken"), (_, "TokenRefreshRequired"):
            return err(.permanent, "the session token is expired or invalid; refresh AWS_SESSION_TOKEN (\(code))")
        case (_, "AccessDenied"), (_, "AllAccessDisabled"):
            return err(.permanent, "access denied: these credentials may not do this in bucket \(config.bucket) (\(code))")
        case (_, "AuthorizationHeaderMalformed"), (_, "PermanentRedirect"), (301, _), (_, "IllegalLocationConstraintException"):
            return err(.permanent, "wrong region or endpoint for bucket \(config.bucket); pass --region (\(code.isEmpty ? "HTTP \(status)" : code))\(S3Store.clause(message))")
        case (429, _), (500..., _):
            return err(.transient, "HTTP \(status)\(code.isEmpty ? "" : " \(code)")\(S3Store.clause(message))")
        case (_, let c) where S3Store.transientCodes.contains(c):
            return err(.transient, "HTTP \(status) \(c)\(S3Store.clause(message))")
        case (403, ""):
            return err(.permanent, "access denied or wrong credentials (HTTP 403)")
        default:
            return err(.permanent, "HTTP \(status)\(code.isEmpty ? "" : " \(code)")\(S3Store.clause(message))")
        }
    }

    /// ": message" on one line, or "" for none.
    static func clause(_ message: String) -> String {
        var one = ""
        // The first line with visible text only: a server that echoes the request shows its
        // request line, never the headers after it.
        for u in message.unicodeScalars {
            if (u == "\n" || u == "\r") && one.contains(where: { !$0.isWhitespace }) { break }
            one.unicodeScalars.append(u.value < 32 ? " " : u)
        }
        one = one.trimmingCharacters(in: " ")
        if one.unicodeScalars.count > 300 { one = String(one.unicodeScalars.prefix(300)) + "..." }
        return one.isEmpty ? "" : ": " + one
    }

    /// The ETag when it is the MD5 of the object's bytes: not multipart (`-N`), not
    /// encrypted with KMS or a customer key.
    static func plainETag(_ r: HTTPResponse) -> String? {
        guard var e = r.header("etag") else { return nil }
        if e.hasPrefix("W/") { return nil }
        e = e.trimmingCharacters(in: "\"").lowercased()
        guard Hex.isHex(Substring(e), length: 32) else { return nil }
        if let sse = r.header("x-amz-server-side-encryption"), sse.hasPrefix("aws:kms") { return nil }
        if r.header("x-amz-server-side-encryption-customer-algorithm") != nil { return nil }
        return e
    }

    /// MD5 and SHA-256 of what a PUT sends, in one pass.
    static func digests(of body: StoreBody, location: String) throws -> (md5: [UInt8], sha256: [UInt8]) {
        switch body {
        case .bytes(let b):
            return (Digest.hash(.md5, b), Digest.hash(.sha256, b))
        case .file(let path), .spoolFile(let path):
            var md5 = Digest(.md5), sha = Digest(.sha256)
            do {
                let fd = try FileDescriptor.open(path, O_RDONLY)
                try fd.closeAfter {
                    try fd.forEachChunk { chunk in
                        md5.update(chunk)
                        sha.update(chunk)
                    }
                }
            } catch {
                throw StoreError(.permanent, "\(location): upload source \(path): \(error)")
            }
            return (md5.finish(), sha.finish())
        }
    }

    // MARK: Listing pages

    struct ListPage {
        var objects: [StoreObject] = []
        var isTruncated = false
        var nextToken: String?
    }

    static func parseListing(_ body: [UInt8]) throws -> ListPage {
        let root = try XMLReader.parse(body)
        guard root.name == "ListBucketResult" else {
            throw XMLReader.Malformed(description: "expected ListBucketResult, got \(root.name)")
        }
        let urlEncoded = root["EncodingType"]?.lowercased() == "url"
        var page = ListPage()
        for c in root.all("Contents") {
            guard let raw = c["Key"] else { throw XMLReader.Malformed(description: "a Contents entry without Key") }
            let key = urlEncoded ? try formDecode(raw) : raw
            page.objects.append(StoreObject(key: key, size: Int64(c["Size"] ?? "") ?? 0))
        }
        page.isTruncated = root["IsTruncated"]?.lowercased() == "true"
        page.nextToken = root["NextContinuationToken"]
        return page
    }

    /// Decodes a key of an `encoding-type=url` listing: `%XX` escapes, and `+` for a space
    /// (as AWS encodes; a literal `+` comes as `%2B`).
    static func formDecode(_ text: String) throws -> String {
        var out = [UInt8]()
        let u = Array(text.utf8)
        var i = 0
        func hex(_ c: UInt8) -> UInt8? {
            switch c {
            case 48...57: return c - 48
            case 65...70: return c - 55
            case 97...102: return c - 87
            default: return nil
            }
        }
        while i < u.count {
            if u[i] == UInt8(ascii: "%") {
                guard i + 2 < u.count, let h = hex(u[i + 1]), let l = hex(u[i + 2]) else {
                    throw XMLReader.Malformed(description: "bad %-escape in listed key")
                }
                out.append(h << 4 | l)
                i += 3
            } else {
                out.append(u[i] == UInt8(ascii: "+") ? UInt8(ascii: " ") : u[i])
                i += 1
            }
        }
        return String(decoding: out, as: UTF8.self)
    }
}
