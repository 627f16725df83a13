/// An AWS access key pair, with the session token of temporary credentials. Its description
/// never shows the secret (nor the key ID), so it is safe in any message.
public struct AWSCredentials: Sendable, CustomStringConvertible {
    public var accessKeyID: String
    public var secretAccessKey: String
    public var sessionToken: String?

    public init(accessKeyID: String, secretAccessKey: String, sessionToken: String? = nil) {
        self.accessKeyID = accessKeyID
        self.secretAccessKey = secretAccessKey
        self.sessionToken = sessionToken
        Redaction.register(secretAccessKey)
        Redaction.register(sessionToken)
    }

    public var description: String { "AWS credentials (hidden)" }

    /// `text` with the key ID, secret and token masked, for server messages that might echo them.
    public func redact(_ text: String) -> String {
        var out = text
        for s in [secretAccessKey, sessionToken ?? "", accessKeyID] where s.utf8.count >= 4 {
            out = out.replacingAll(s, with: "***")
        }
        return out
    }
}

/// AWS Signature Version 4 in the `Authorization` header: the project's only signer.
///
/// Paths and query parameters are given raw (unencoded) and encoded here once, per RFC 3986
/// as SigV4 wants it, so the URL sent and the canonical request always agree. S3 style: the
/// path is not normalised (`//`, `.` and `..` segments are kept) and not encoded twice.
public struct SigV4: Sendable {
    public var credentials: AWSCredentials
    public var region: String
    public var service: String

    public init(credentials: AWSCredentials, region: String, service: String = "s3") {
        self.credentials = credentials
        self.region = region
        self.service = service
    }

    /// SHA-256 of an empty payload.
    public static let emptyPayloadHash = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

    /// What was signed and the headers to send.
    public struct Signed: Sendable {
        public var canonicalRequest: String
        public var stringToSign: String
        public var signature: String
        /// The request's headers plus `x-amz-date`, `x-amz-content-sha256` (S3), the session token
        /// when there is one, and `Authorization`.
        public var headers: [(name: String, value: String)]
        /// The encoded path and query, to build the URL from.
        public var encodedPath: String
        public var encodedQuery: String
    }

    /// Signs a request.
    /// - Parameters:
    ///   - method: `GET`, `PUT`, ...
    ///   - path: the raw path, starting with "/" (e.g. `/bucket/servers.web 1/x.wsp.gz`).
    ///   - query: raw name/value pairs; a parameter without value (`?delete`) has value "".
    ///   - headers: headers to sign; must include `Host` exactly as it will be sent.
    ///   - payloadHash: hex SHA-256 of the body (or `UNSIGNED-PAYLOAD`).
    ///   - time: seconds since the epoch.
    public func sign(method: String, path: String, query: [(name: String, value: String)] = [],
                     headers: [(name: String, value: String)], payloadHash: String, time: Int64) -> Signed {
        let amzDate = Timestamp.format(time)
        let day = String(amzDate.prefix(8))
        var all = headers.filter { !["x-amz-date", "x-amz-content-sha256", "x-amz-security-token", "authorization"].contains($0.name.lowercased()) }
        all.append(("x-amz-date", amzDate))
        // S3 wants the payload hash as a header too; other services only sign it.
        if service == "s3" { all.append(("x-amz-content-sha256", payloadHash)) }
        if let token = credentials.sessionToken { all.append(("x-amz-security-token", token)) }

        // Canonical headers: lower-case names, sorted; values trimmed with inner runs of
        // white space made one space; repeated names joined by ",".
        var byName: [String: [String]] = [:]
        for h in all { byName[h.name.lowercased(), default: []].append(SigV4.trimAll(h.value)) }
        let names = byName.keys.sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) }
        let canonicalHeaders = names.map { "\($0):\(byName[$0]!.joined(separator: ","))\n" }.joined()
        let signedHeaders = names.joined(separator: ";")

        let encodedPath = SigV4.encode(path.isEmpty ? "/" : path, keepSlash: true)
        let encodedQuery = SigV4.canonicalQuery(query)
        let canonicalRequest = [method.uppercased(), encodedPath, encodedQuery, canonicalHeaders, signedHeaders, payloadHash]
            .joined(separator: "\n")
        let scope = "\(day)/\(region)/\(service)/aws4_request"
        let stringToSign = ["AWS4-HMAC-SHA256", amzDate, scope, Digest.sha256Hex(Array(canonicalRequest.utf8))]
            .joined(separator: "\n")
        let key = signingKey(day: day)
        let signature = Hex.encode(Digest.hmacSHA256(key: key, Array(stringToSign.utf8)))
        all.append(("Authorization", "AWS4-HMAC-SHA256 Credential=\(credentials.accessKeyID)/\(scope), SignedHeaders=\(signedHeaders), Signature=\(signature)"))
        return Signed(canonicalRequest: canonicalRequest, stringToSign: stringToSign, signature: signature,
                      headers: all, encodedPath: encodedPath, encodedQuery: encodedQuery)
    }

    /// kSigning = HMAC(HMAC(HMAC(HMAC("AWS4" + secret, day), region), service), "aws4_request").
    public func signingKey(day: String) -> [UInt8] {
        var k = Digest.hmacSHA256(key: Array("AWS4\(credentials.secretAccessKey)".utf8), Array(day.utf8))
        k = Digest.hmacSHA256(key: k, Array(region.utf8))
        k = Digest.hmacSHA256(key: k, Array(service.utf8))
        return Digest.hmacSHA256(key: k, Array("aws4_request".utf8))
    }

    /// Percent-encodes the UTF-8 bytes of `text`: everything but `A-Z a-z 0-9 - _ . ~` becomes
    /// `%XX` (upper-case hex); `/` is kept when `keepSlash`.
    public static func encode(_ text: String, keepSlash: Bool = false) -> String {
        let hex = Array("0123456789ABCDEF".utf8)
        var out = [UInt8]()
        out.reserveCapacity(text.utf8.count)
        for b in text.utf8 {
            switch b {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"),
                 UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"), UInt8(ascii: "_"),
                 UInt8(ascii: "."), UInt8(ascii: "~"):
                out.append(b)
            case UInt8(ascii: "/") where keepSlash:
                out.append(b)
            default:
                out += [UInt8(ascii: "%"), hex[Int(b >> 4)], hex[Int(b & 15)]]
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// The canonical query string: each name and value encoded, pairs sorted by encoded name
    /// then value, `name=value` joined by `&` (a parameter without value gives `name=`).
    public static func canonicalQuery(_ query: [(name: String, value: String)]) -> String {
        query.map { (encode($0.name), encode($0.value)) }
            .sorted { $0.0 != $1.0 ? $0.0.utf8.lexicographicallyPrecedes($1.0.utf8) : $0.1.utf8.lexicographicallyPrecedes($1.1.utf8) }
            .map { "\($0.0)=\($0.1)" }
            .joined(separator: "&")
    }

    /// Leading and trailing white space removed, inner runs made one space.
    static func trimAll(_ value: String) -> String {
        value.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\n" || $0 == "\r" }).joined(separator: " ")
    }
}

extension String {
    /// Every occurrence of `target` replaced (no Foundation in the library).
    func replacingAll(_ target: String, with replacement: String) -> String {
        guard !target.isEmpty else { return self }
        let t = Array(target.utf8), s = Array(utf8)
        var out = [UInt8]()
        out.reserveCapacity(s.count)
        var i = 0
        while i < s.count {
            if i + t.count <= s.count && s[i] == t[0] && Array(s[i..<(i + t.count)]) == t {
                out += replacement.utf8
                i += t.count
            } else {
                out.append(s[i])
                i += 1
            }
        }
        return String(decoding: out, as: UTF8.self)
    }
}
