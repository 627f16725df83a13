import Synchronization

/// Keeps secrets out of everything a tool prints. Every credential the process knows (the
/// environment's keys, passwords and tokens, secrets read from profiles, tokens a server
/// handed out) is registered here, and every line a tool writes to stderr passes through
/// `apply`, which masks them; text a server sent back is also cleared of the values of
/// credential-bearing fields (`X-Auth-Key: ...`, `"password": "..."`), known or not.
public enum Redaction {
    private static let secrets = Mutex<[String]>([])

    /// What a masked value reads as.
    public static let mask = "<redacted>"

    /// The environment variables that hold secrets.
    public static let environmentSecrets = [
        "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "ST_KEY", "OS_PASSWORD",
        "OS_AUTH_TOKEN", "OS_TOKEN", "OS_APPLICATION_CREDENTIAL_SECRET",
    ]

    /// Field names whose value is a credential, wherever they appear (headers, JSON, forms).
    static let fieldNames = [
        "x-auth-key", "x-auth-token", "x-storage-token", "x-subject-token", "x-auth-new-token",
        "x-amz-security-token", "authorization", "password", "secret", "aws_secret_access_key",
        "aws_session_token", "x-amz-signature",
    ]

    /// Remembers `value` as a secret (values under 4 bytes are too short to mask safely).
    public static func register(_ value: String?) {
        guard let value, value.utf8.count >= 4 else { return }
        secrets.withLock { if !$0.contains(value) { $0.append(value) } }
    }

    /// Registers the secrets of the environment (`environmentSecrets`).
    public static func registerEnvironment() {
        for name in environmentSecrets { register(system_getenv(name)) }
    }

    /// `text` with every registered secret and every credential field's value masked.
    public static func apply(_ text: String) -> String {
        var out = text
        for s in secrets.withLock({ $0 }) where out.contains(s) {
            out = out.replacingAll(s, with: mask)
        }
        return maskFields(out)
    }

    /// Masks the value after `NAME:` or `NAME=` (quotes and spaces allowed around the
    /// separator) for each credential field name, case-insensitively.
    static func maskFields(_ text: String) -> String {
        var s = Array(text.utf8)
        let lower = s.map { $0 >= 65 && $0 <= 90 ? $0 + 32 : $0 }
        var cuts: [Range<Int>] = []
        for name in fieldNames {
            let n = Array(name.utf8)
            var i = 0
            while i + n.count <= lower.count {
                guard lower[i] == n[0], Array(lower[i..<(i + n.count)]) == n else { i += 1; continue }
                // A whole word: not the tail of a longer name.
                let before = i == 0 ? UInt8(32) : lower[i - 1]
                var j = i + n.count
                i += 1
                if isNameByte(before) { continue }
                while j < s.count, s[j] == 34 || s[j] == 39 || s[j] == 32 { j += 1 }
                guard j < s.count, s[j] == 58 || s[j] == 61 else { continue }   // ':' or '='
                j += 1
                while j < s.count, s[j] == 34 || s[j] == 39 || s[j] == 32 { j += 1 }
                if j < s.count, s[j] == 123 || s[j] == 91 { continue }   // an object or list: its fields are masked one by one
                var end = j
                // "Bearer xyz", "AWS4-HMAC-SHA256 Credential=..., Signature=...": to the line's end
                // for authorization, else to the next separator.
                let stops: Set<UInt8> = name == "authorization" ? [10, 13, 34, 39] : [10, 13, 32, 34, 39, 44, 38, 59, 60, 125]
                while end < s.count, !stops.contains(s[end]) { end += 1 }
                if end > j { cuts.append(j..<end) }
            }
        }
        if cuts.isEmpty { return text }
        // Overlapping cuts (a signature inside an Authorization value) become one.
        var merged: [Range<Int>] = []
        for r in cuts.sorted(by: { $0.lowerBound < $1.lowerBound }) {
            if let last = merged.last, r.lowerBound <= last.upperBound {
                merged[merged.count - 1] = last.lowerBound..<max(last.upperBound, r.upperBound)
            } else {
                merged.append(r)
            }
        }
        for r in merged.reversed() { s.replaceSubrange(r, with: Array(mask.utf8)) }
        return String(decoding: s, as: UTF8.self)
    }

    static func isNameByte(_ b: UInt8) -> Bool {
        (b >= 97 && b <= 122) || (b >= 48 && b <= 57) || b == 45 || b == 95
    }
}
