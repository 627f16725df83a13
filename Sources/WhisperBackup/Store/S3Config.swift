#if canImport(Glibc)
import Glibc
#endif

/// Where and how to reach an S3 bucket, resolved the way AWS tools do:
///
/// - credentials: `AWS_ACCESS_KEY_ID` + `AWS_SECRET_ACCESS_KEY` (+ `AWS_SESSION_TOKEN`), else
///   the profile `AWS_PROFILE` (default `default`) in `~/.aws/credentials`
///   (`AWS_SHARED_CREDENTIALS_FILE`) or `~/.aws/config` (`AWS_CONFIG_FILE`);
/// - region: `--region`, `AWS_REGION`, `AWS_DEFAULT_REGION`, the profile's `region`, else
///   `us-east-1`;
/// - endpoint: `--endpoint`, `AWS_ENDPOINT_URL_S3`, `AWS_ENDPOINT_URL`, the profile's
///   `endpoint_url` (also under its `s3 =` section), else `https://s3.REGION.amazonaws.com`;
/// - addressing: `--path-style`/`--no-path-style`, the profile's `s3 = addressing_style`, else
///   path-style for a custom endpoint and virtual-hosted on AWS (path-style for bucket names
///   that are not valid host names, such as names with dots over https);
/// - TLS: verified unless `--insecure`; `AWS_CA_BUNDLE` or the profile's `ca_bundle` replace
///   the system's CA certificates.
///
/// Secrets are never put in messages; a problem names the variable or file to fix.
public struct S3Config: Sendable {
    public struct Endpoint: Sendable, Equatable {
        public var scheme: String
        public var host: String
        public var port: Int?

        /// `host[:port]` as sent in the Host header (default ports left out).
        public var authority: String {
            guard let port, !(scheme == "http" && port == 80), !(scheme == "https" && port == 443) else { return host }
            return host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
        }
    }

    public var location: String
    public var bucket: String
    public var prefix: String
    public var endpoint: Endpoint
    public var isAWS: Bool
    public var region: String
    public var pathStyle: Bool
    public var credentials: AWSCredentials
    public var insecure: Bool
    public var caBundle: String?
    /// PUTs in flight at once for a batch (`--connections`).
    public var connections = ConcurrentPuts.defaultWidth

    /// - Parameters:
    ///   - environment: looks up a variable (tests pass their own; default: the process's).
    ///   - readFile: reads a config file, nil when missing (tests pass their own).
    public init(url: StoreURL, settings: StoreSettings,
                environment: (String) -> String? = { system_getenv($0) },
                readFile: (String) -> String? = S3Config.readTextFile) throws {
        location = url.text
        func env(_ name: String) -> String? {
            guard let v = environment(name), !v.isEmpty else { return nil }
            return v
        }
        guard !url.host.isEmpty else { throw ConfigError("\(url.text): no bucket in s3:// URL (s3://BUCKET/PREFIX)") }
        guard S3Config.isValidBucketName(url.host) else {
            throw ConfigError("\(url.text): \(url.host) is not a valid bucket name")
        }
        bucket = url.host
        prefix = url.keyPrefix

        // The profile, from both files (credentials first, as the AWS CLI reads them).
        let profileName = env("AWS_PROFILE") ?? env("AWS_DEFAULT_PROFILE") ?? "default"
        let home = env("HOME") ?? "/"
        // `~` and `~/...` are expanded, as botocore expands them.
        func expand(_ path: String) -> String {
            path == "~" ? home : path.hasPrefix("~/") ? home + path.dropFirst() : path
        }
        let credentialsFile = expand(env("AWS_SHARED_CREDENTIALS_FILE") ?? home + "/.aws/credentials")
        let configFile = expand(env("AWS_CONFIG_FILE") ?? home + "/.aws/config")
        let fromCredentials = readFile(credentialsFile).flatMap { IniFile.parse($0)[profileName] }
        let configSection = profileName == "default" ? "default" : "profile \(profileName)"
        let configText = readFile(configFile)
        let fromConfig = configText.flatMap { IniFile.parse($0)[configSection] ?? IniFile.parse($0)[profileName] }
        let profile = (fromConfig ?? [:]).merging(fromCredentials ?? [:]) { _, c in c }
        if env("AWS_PROFILE") != nil && fromCredentials == nil && fromConfig == nil {
            throw ConfigError("\(url.text): AWS_PROFILE names profile \(profileName), which is in neither \(credentialsFile) nor \(configFile)")
        }
        func setting(_ key: String) -> String? {
            guard let v = profile[key] ?? profile["s3." + key], !v.isEmpty else { return nil }
            return v
        }

        // Credentials: the environment wins as a pair; a half pair is an error.
        switch (env("AWS_ACCESS_KEY_ID"), env("AWS_SECRET_ACCESS_KEY")) {
        case let (id?, secret?):
            credentials = AWSCredentials(accessKeyID: id, secretAccessKey: secret,
                                         sessionToken: env("AWS_SESSION_TOKEN") ?? env("AWS_SECURITY_TOKEN"))
        case (_?, nil):
            throw ConfigError("\(url.text): AWS_ACCESS_KEY_ID is set but AWS_SECRET_ACCESS_KEY is not")
        case (nil, _?):
            throw ConfigError("\(url.text): AWS_SECRET_ACCESS_KEY is set but AWS_ACCESS_KEY_ID is not")
        case (nil, nil):
            guard let id = setting("aws_access_key_id"), let secret = setting("aws_secret_access_key") else {
                if profile.isEmpty {
                    throw ConfigError("\(url.text): no S3 credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE with a profile in \(credentialsFile)")
                }
                throw ConfigError("\(url.text): profile \(profileName) has no aws_access_key_id/aws_secret_access_key (only static keys are supported)")
            }
            credentials = AWSCredentials(accessKeyID: id, secretAccessKey: secret, sessionToken: setting("aws_session_token"))
        }

        region = settings.region ?? env("AWS_REGION") ?? env("AWS_DEFAULT_REGION") ?? setting("region") ?? "us-east-1"
        guard !region.isEmpty, region.utf8.allSatisfy({ $0 > 32 && $0 != UInt8(ascii: "/") && $0 < 127 }) else {
            throw ConfigError("\(url.text): region \(region) is not a region name")
        }

        let endpointText = settings.endpoint ?? env("AWS_ENDPOINT_URL_S3") ?? env("AWS_ENDPOINT_URL") ?? setting("endpoint_url")
        if let text = endpointText {
            endpoint = try S3Config.parseEndpoint(text, location: url.text)
            isAWS = false
        } else {
            endpoint = Endpoint(scheme: "https", host: "s3.\(region).amazonaws.com", port: nil)
            isAWS = true
        }

        let hostSafe = S3Config.isHostSafe(bucket) && !(endpoint.scheme == "https" && bucket.contains("."))
        if let explicit = settings.pathStyle {
            pathStyle = explicit
            if !explicit && !S3Config.isHostSafe(bucket) {
                throw ConfigError("\(url.text): bucket \(bucket) cannot be a host name; use --path-style")
            }
        } else if let style = setting("addressing_style"), style == "path" || style == "virtual" {
            pathStyle = style == "path" || !hostSafe
        } else {
            pathStyle = !isAWS || !hostSafe
        }

        insecure = settings.insecure
        connections = settings.connections
        caBundle = env("AWS_CA_BUNDLE") ?? setting("ca_bundle")
    }

    /// The HTTP settings for this store.
    public var httpOptions: HTTPClient.Options {
        var o = HTTPClient.Options()
        o.insecure = insecure
        o.caBundle = caBundle
        return o
    }

    static func parseEndpoint(_ text: String, location: String) throws -> Endpoint {
        var rest = Substring(text)
        let scheme: String
        if rest.hasPrefix("https://") { scheme = "https"; rest = rest.dropFirst(8) }
        else if rest.hasPrefix("http://") { scheme = "http"; rest = rest.dropFirst(7) }
        else { throw ConfigError("\(location): endpoint \(text) must start with http:// or https://") }
        while rest.hasSuffix("/") { rest = rest.dropLast() }
        guard !rest.contains("/"), !rest.contains("@"), !rest.contains("?"), !rest.isEmpty else {
            throw ConfigError("\(location): endpoint \(text) must be http(s)://HOST[:PORT] with no path or credentials")
        }
        var host = String(rest)
        var port: Int? = nil
        if host.hasPrefix("[") {  // [IPv6]:port
            guard let close = host.firstIndex(of: "]") else { throw ConfigError("\(location): endpoint \(text): bad IPv6 address") }
            let after = host[host.index(after: close)...]
            if after.hasPrefix(":") { port = Int(after.dropFirst()) ; if port == nil { throw ConfigError("\(location): endpoint \(text): bad port") } }
            host = String(host[host.index(after: host.startIndex)..<close])
        } else if let colon = host.lastIndex(of: ":") {
            guard let p = Int(host[host.index(after: colon)...]), (1...65535).contains(p) else {
                throw ConfigError("\(location): endpoint \(text): bad port")
            }
            port = p
            host = String(host[..<colon])
        }
        return Endpoint(scheme: scheme, host: host.lowercased(), port: port)
    }

    /// S3's rules, loosely: 3-255 characters of letters, digits, `.`, `-`, `_` (older
    /// buckets and other servers allow upper case and `_`).
    static func isValidBucketName(_ name: String) -> Bool {
        (3...255).contains(name.utf8.count) && name.utf8.allSatisfy {
            ($0 >= 97 && $0 <= 122) || ($0 >= 65 && $0 <= 90) || ($0 >= 48 && $0 <= 57) || $0 == 46 || $0 == 45 || $0 == 95
        }
    }

    /// Whether the bucket name can be a DNS label prefix (virtual-hosted addressing).
    static func isHostSafe(_ name: String) -> Bool {
        name.utf8.count <= 63 && name.utf8.allSatisfy { ($0 >= 97 && $0 <= 122) || ($0 >= 48 && $0 <= 57) || $0 == 46 || $0 == 45 }
            && !name.hasPrefix("-") && !name.hasSuffix("-") && !name.contains("..")
    }

    public static func readTextFile(_ path: String) -> String? {
        guard let fd = try? FileDescriptor.open(path, O_RDONLY) else { return nil }
        return fd.closeAfter { (try? fd.readAll()).map { String(decoding: $0, as: UTF8.self) } }
    }
}

/// The INI dialect of `~/.aws/credentials` and `~/.aws/config`: `[section]`, `key = value`,
/// `#`/`;` comments, and nested settings (`s3 =` followed by indented `key = value` lines,
/// stored as `s3.key`).
enum IniFile {
    static func parse(_ text: String) -> [String: [String: String]] {
        var out: [String: [String: String]] = [:]
        var section: String?
        var nested: String?
        for raw in text.split(omittingEmptySubsequences: false, whereSeparator: { $0 == "\n" || $0 == "\r\n" || $0 == "\r" }) {
            let indented = raw.first == " " || raw.first == "\t"
            let line = String(raw).trimmingCharacters(in: " \t\r")
            if line.isEmpty || line.hasPrefix("#") || line.hasPrefix(";") { continue }
            if line.hasPrefix("[") && line.hasSuffix("]") {
                let name = String(line.dropFirst().dropLast()).trimmingCharacters(in: " \t")
                section = name
                nested = nil
                if out[name] == nil { out[name] = [:] }
                continue
            }
            guard let s = section, let eq = line.firstIndex(of: "=") else { continue }
            let key = String(line[..<eq]).trimmingCharacters(in: " \t").lowercased()
            let value = String(line[line.index(after: eq)...]).trimmingCharacters(in: " \t")
            if indented, let n = nested {
                out[s]![n + "." + key] = value
            } else if value.isEmpty {
                nested = key
            } else {
                nested = nil
                out[s]![key] = value
            }
        }
        return out
    }
}
