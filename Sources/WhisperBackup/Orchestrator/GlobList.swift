/// `-m GLOBS`: metric globs separated by commas outside braces (`a.{b,c}.*,d.*` is two).
public enum GlobList {
    public static func split(_ text: String) -> [String] {
        var out: [String] = []
        var cur = ""
        var depth = 0
        for c in text {
            switch c {
            case "{": depth += 1; cur.append(c)
            case "}": depth -= 1; cur.append(c)
            case "," where depth == 0: out.append(cur); cur = ""
            default: cur.append(c)
            }
        }
        if !cur.isEmpty { out.append(cur) }
        return out.isEmpty ? ["*"] : out
    }
}
