/// Where a store's state lives when --state is not given: $WSP_STATE_HOME/<store>, else
/// /var/lib/whisper-backup/state/<store> when writable, else the user's state directory.
public enum StateName {
    /// The store URL as one file name: every byte but A-Za-z0-9._- becomes `_`.
    public static func name(of store: String) -> String {
        String(decoding: store.utf8.map { b -> UInt8 in
            let ok = (b >= 65 && b <= 90) || (b >= 97 && b <= 122) || (b >= 48 && b <= 57) || b == 46 || b == 95 || b == 45
            return ok ? b : 95
        }, as: UTF8.self)
    }

    public static func directory(for store: String, env: (String) -> String?, writable: (String) -> Bool) -> String {
        let n = name(of: store)
        if let h = env("WSP_STATE_HOME"), !h.isEmpty { return "\(h)/\(n)" }
        if writable("/var/lib") || writable("/var/lib/whisper-backup") { return "/var/lib/whisper-backup/state/\(n)" }
        let base = env("XDG_STATE_HOME").flatMap { $0.isEmpty ? nil : $0 } ?? "\(env("HOME") ?? "")/.local/state"
        return "\(base)/whisper-backup/\(n)"
    }
}
