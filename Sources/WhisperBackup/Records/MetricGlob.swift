/// A shell-style pattern over dotted metric names: `*` (any run, dots included, as the
/// original tool's fnmatch), `?` (one character), `[abc]`, `[a-z]`, `[!x]`, and `{a,b}`
/// alternatives (nestable). A metric matches when any expansion matches it whole.
public struct MetricGlob: Sendable, CustomStringConvertible {
    enum Token: Sendable, Equatable {
        case literal(Unicode.Scalar)
        case any
        case star
        case set([ClosedRange<Unicode.Scalar>], negated: Bool)
    }

    public let pattern: String
    let alternatives: [[Token]]

    public init(_ pattern: String) throws {
        self.pattern = pattern
        alternatives = try MetricGlob.expandBraces(Array(pattern.unicodeScalars)).map(MetricGlob.tokenize)
    }

    public var description: String { pattern }

    /// Whether the whole of `metric` matches.
    public func matches(_ metric: String) -> Bool {
        let s = Array(metric.unicodeScalars)
        return alternatives.contains { MetricGlob.run($0, s, wholeMatch: true) }
    }

    /// Whether some metric that starts with `prefix` could match: lets a walk skip
    /// directories that cannot hold a match.
    public func couldMatch(prefix: String) -> Bool {
        let s = Array(prefix.unicodeScalars)
        return alternatives.contains { MetricGlob.run($0, s, wholeMatch: false) }
    }

    /// The longest literal start shared by every expansion: where a store listing begins.
    public var literalPrefix: String {
        let prefixes = alternatives.map { tokens -> [Unicode.Scalar] in
            var out: [Unicode.Scalar] = []
            for t in tokens { if case .literal(let c) = t { out.append(c) } else { break } }
            return out
        }
        guard var common = prefixes.first else { return "" }
        for p in prefixes.dropFirst() {
            var n = 0
            while n < common.count && n < p.count && common[n] == p[n] { n += 1 }
            common = Array(common[0..<n])
        }
        var s = String.UnicodeScalarView()
        s.append(contentsOf: common)
        return String(s)
    }

    /// Whether the pattern has no wildcard at all (names exactly one metric).
    public var isLiteral: Bool {
        alternatives.count == 1 && alternatives[0].allSatisfy { if case .literal = $0 { return true } else { return false } }
    }

    // Set-of-positions simulation: linear in pattern x name, no backtracking blow-up.
    static func run(_ tokens: [Token], _ s: [Unicode.Scalar], wholeMatch: Bool) -> Bool {
        var states = [Bool](repeating: false, count: tokens.count + 1)
        func close(_ st: inout [Bool]) {
            for i in 0..<tokens.count where st[i] && tokens[i] == .star { st[i + 1] = true }
        }
        states[0] = true
        close(&states)
        for c in s {
            var next = [Bool](repeating: false, count: tokens.count + 1)
            var alive = false
            for i in 0..<tokens.count where states[i] {
                switch tokens[i] {
                case .star: next[i] = true; alive = true
                case .any: next[i + 1] = true; alive = true
                case .literal(let l): if l == c { next[i + 1] = true; alive = true }
                case .set(let ranges, let negated):
                    if ranges.contains(where: { $0.contains(c) }) != negated { next[i + 1] = true; alive = true }
                }
            }
            if !alive { return false }
            close(&next)
            states = next
        }
        return wholeMatch ? states[tokens.count] : states.contains(true)
    }

    static func tokenize(_ p: [Unicode.Scalar]) throws -> [Token] {
        var out: [Token] = []
        var i = 0
        while i < p.count {
            let c = p[i]
            switch c {
            case "*":
                if out.last != .star { out.append(.star) }
            case "?":
                out.append(.any)
            case "[":
                var j = i + 1
                var negated = false
                if j < p.count && (p[j] == "!" || p[j] == "^") { negated = true; j += 1 }
                var ranges: [ClosedRange<Unicode.Scalar>] = []
                var first = true
                while j < p.count && (p[j] != "]" || first) {
                    first = false
                    let lo = p[j]
                    if j + 2 < p.count && p[j + 1] == "-" && p[j + 2] != "]" {
                        let hi = p[j + 2]
                        guard lo <= hi else { throw RecordError("bad range \(lo)-\(hi) in pattern") }
                        ranges.append(lo...hi)
                        j += 3
                    } else {
                        ranges.append(lo...lo)
                        j += 1
                    }
                }
                guard j < p.count else { throw RecordError("unclosed '[' in pattern") }
                out.append(.set(ranges, negated: negated))
                i = j
            case "\\":
                i += 1
                guard i < p.count else { throw RecordError("pattern ends with '\\'") }
                out.append(.literal(p[i]))
            default:
                out.append(.literal(c))
            }
            i += 1
        }
        return out
    }

    /// `a{b,c{d,e}}f` -> `abf`, `acdf`, `acef`. Braces inside `[...]` or escaped are literal.
    static func expandBraces(_ p: [Unicode.Scalar]) throws -> [[Unicode.Scalar]] {
        var depth = 0, open = -1
        var commas: [Int] = []
        var i = 0
        var inSet = false
        while i < p.count {
            let c = p[i]
            if c == "\\" { i += 2; continue }
            if inSet { if c == "]" { inSet = false }; i += 1; continue }
            if c == "[" { inSet = true; i += 2; continue }
            if c == "{" {
                if depth == 0 { open = i; commas = [] }
                depth += 1
            } else if c == "}" && depth > 0 {
                depth -= 1
                if depth == 0 {
                    let head = Array(p[0..<open])
                    let tail = Array(p[(i + 1)...])
                    var parts: [[Unicode.Scalar]] = []
                    var start = open + 1
                    for comma in commas + [i] {
                        parts.append(Array(p[start..<comma]))
                        start = comma + 1
                    }
                    var out: [[Unicode.Scalar]] = []
                    for part in parts {
                        out.append(contentsOf: try expandBraces(head + part + tail))
                    }
                    return out
                }
            } else if c == "," && depth == 1 {
                commas.append(i)
            }
            i += 1
        }
        if depth != 0 { throw RecordError("unclosed '{' in pattern") }
        return [p]
    }
}
