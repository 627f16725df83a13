/// The original tool's listing: each metric, then its versions.
public enum Listing {
    public static func format(_ records: String) -> String {
        var out = ""
        var last: Substring? = nil
        var n = 0
        for l in records.split(separator: "\n") {
            let f = l.split(separator: "\t", omittingEmptySubsequences: false)
            if f[0] != last { out += "\(f[0])\n"; last = f[0] }
            out += "\tDate: \(f.count > 1 ? f[1] : "")\t\(f.count > 2 ? f[2] : "")\n"
            n += 1
        }
        out += "\n" + (n > 0 ? "\(n) compressed whisper databases found.\n" : "No backups found.\n")
        return out
    }
}
