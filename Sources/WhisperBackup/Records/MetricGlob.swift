/// A shell-style pattern over dotted metric names: `*` (any run, dots included, as the
/// original tool's fnmatch), `?` (one character), `[abc]`, `[a-z]`, `[!x]`, and `{a,b}`
/// alternatives (nestable). A metric matches when some choice of alternatives matches it whole.
///
/// The pattern is compiled once into a small automaton (one node per pattern character, an
/// alternation shares what follows it instead of copying it), and a name is matched by
/// carrying the set of live nodes along its characters: time is linear in the name times the
/// pattern, memory linear in the pattern, whatever the braces (`{a,b}` thirty times over is
/// 2^30 expansions, but 150 nodes here).
public struct MetricGlob: Sendable, CustomStringConvertible {
    enum Kind: Sendable, Equatable {
        case literal(Unicode.Scalar)
        case any
        case set([ClosedRange<Unicode.Scalar>], negated: Bool)
        /// Consumes any character and stays; `next` is left without consuming.
        case star
        /// Consumes nothing: leads to every node of `also` and to `next`.
        case split([Int])
        case accept
    }

    struct Node: Sendable {
        var kind: Kind
        var next: Int
    }

    public let pattern: String
    /// Whether the pattern is only `*`s, which every name matches (the default, a whole
    /// tree): matching then runs nothing per name.
    public let matchesEverything: Bool
    let nodes: [Node]
    let start: Int

    public init(_ pattern: String) throws {
        self.pattern = pattern
        matchesEverything = !pattern.isEmpty && pattern.utf8.allSatisfy { $0 == UInt8(ascii: "*") }
        var parser = Parser(p: Array(pattern.unicodeScalars))
        let items = try parser.sequence(inBraces: false)
        var nodes = [Node(kind: .accept, next: -1)]
        start = MetricGlob.compile(items, next: 0, into: &nodes)
        self.nodes = nodes
    }

    public var description: String { pattern }

    /// Whether the whole of `metric` matches.
    public func matches(_ metric: String) -> Bool {
        if matchesEverything { return true }
        guard let live = run(metric) else { return false }
        return live.contains(0)
    }

    /// Whether some metric that starts with `prefix` could match: lets a walk skip
    /// directories that cannot hold a match.
    public func couldMatch(prefix: String) -> Bool {
        matchesEverything || run(prefix) != nil
    }

    /// The longest literal start every matching name shares: where a store listing begins.
    public var literalPrefix: String { literalWalk().prefix }

    /// Whether the pattern has no wildcard and no choice (names exactly one metric).
    public var isLiteral: Bool { literalWalk().literal }

    // MARK: - Matching

    /// The live nodes after consuming `s` (closed over moves that consume nothing), or nil
    /// when none is left.
    func run(_ s: String) -> [Int]? {
        var seen = [Int](repeating: -1, count: nodes.count)
        var live: [Int] = []
        var generation = 0
        close(start, &live, &seen, generation)
        for c in s.unicodeScalars {
            generation += 1
            var next: [Int] = []
            for i in live {
                switch nodes[i].kind {
                case .star: close(i, &next, &seen, generation)
                case .any: close(nodes[i].next, &next, &seen, generation)
                case .literal(let l): if l == c { close(nodes[i].next, &next, &seen, generation) }
                case .set(let ranges, let negated):
                    if ranges.contains(where: { $0.contains(c) }) != negated { close(nodes[i].next, &next, &seen, generation) }
                case .split, .accept: break
                }
            }
            if next.isEmpty { return nil }
            live = next
        }
        return live
    }

    /// Adds `i` and every node reachable from it without consuming to `out` (once each).
    func close(_ i: Int, _ out: inout [Int], _ seen: inout [Int], _ generation: Int) {
        var stack = [i]
        while let n = stack.popLast() {
            if seen[n] == generation { continue }
            seen[n] = generation
            out.append(n)
            switch nodes[n].kind {
            case .split(let also): stack.append(contentsOf: also); stack.append(nodes[n].next)
            case .star: stack.append(nodes[n].next)
            default: break
            }
        }
    }

    func literalWalk() -> (prefix: String, literal: Bool) {
        var seen = [Int](repeating: -1, count: nodes.count)
        var live: [Int] = []
        var generation = 0
        close(start, &live, &seen, generation)
        var out = String.UnicodeScalarView()
        while true {
            var char: Unicode.Scalar? = nil
            var consuming: [Int] = []
            var accepts = false
            var single = true
            for i in live {
                switch nodes[i].kind {
                case .accept: accepts = true
                case .split: break
                case .literal(let c):
                    if char == nil { char = c } else if char != c { single = false }
                    consuming.append(i)
                default: single = false; consuming.append(i)
                }
            }
            if accepts || !single || char == nil {
                return (String(out), accepts && consuming.isEmpty)
            }
            out.append(char!)
            generation += 1
            var next: [Int] = []
            for i in consuming { close(nodes[i].next, &next, &seen, generation) }
            live = next
        }
    }

    // MARK: - Parsing and compiling

    indirect enum Item {
        case node(Kind)
        case choice([[Item]])
    }

    /// Builds `items` followed by `next`, back to front; returns the first node.
    static func compile(_ items: [Item], next: Int, into nodes: inout [Node]) -> Int {
        var cont = next
        for item in items.reversed() {
            switch item {
            case .node(let kind):
                nodes.append(Node(kind: kind, next: cont))
            case .choice(let alternatives):
                let starts = alternatives.map { compile($0, next: cont, into: &nodes) }
                nodes.append(Node(kind: .split(Array(starts.dropFirst())), next: starts.first ?? cont))
            }
            cont = nodes.count - 1
        }
        return cont
    }

    struct Parser {
        let p: [Unicode.Scalar]
        var i = 0

        /// Items up to the end, or (inside braces) up to a `,` or `}` of this level.
        mutating func sequence(inBraces: Bool) throws -> [Item] {
            var out: [Item] = []
            while i < p.count {
                let c = p[i]
                switch c {
                case "," where inBraces, "}" where inBraces:
                    return out
                case "{":
                    i += 1
                    var alternatives: [[Item]] = []
                    while true {
                        alternatives.append(try sequence(inBraces: true))
                        guard i < p.count else { throw RecordError("unclosed '{' in pattern") }
                        i += 1
                        if p[i - 1] == "}" { break }
                    }
                    out.append(.choice(alternatives))
                    continue
                case "*":
                    if case .node(.star)? = out.last {} else { out.append(.node(.star)) }
                case "?":
                    out.append(.node(.any))
                case "[":
                    out.append(.node(try set()))
                case "\\":
                    i += 1
                    guard i < p.count else { throw RecordError("pattern ends with '\\'") }
                    out.append(.node(.literal(p[i])))
                default:
                    out.append(.node(.literal(c)))
                }
                i += 1
            }
            if inBraces { throw RecordError("unclosed '{' in pattern") }
            return out
        }

        /// `[...]` at `i`; leaves `i` on its `]`.
        mutating func set() throws -> Kind {
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
            i = j
            return .set(ranges, negated: negated)
        }
    }
}
