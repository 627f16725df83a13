/// A batch of uploads with several PUTs in flight at once, for the stores that speak HTTP
/// (S3, Swift): a store a round trip away stores a batch in about `count / width` round
/// trips instead of `count`. Each item's request is made and its answer checked exactly as
/// the store's `put` does; only the sending overlaps (`HTTPClient.performMany`, one thread).
public enum ConcurrentPuts {
    /// PUTs a process keeps in flight when nothing says otherwise (`--connections`).
    public static let defaultWidth = 4
    public static let maxWidth = 64

    /// - prepare: the item's request and what `check` needs to judge its answer.
    /// - check: throws when the answer (or the transfer's failure) means the item is not stored.
    static func run<Expected>(_ items: [(key: String, body: StoreBody)], width: Int,
                              send: ([HTTPRequest], Int) -> [Result<HTTPResponse, Error>],
                              prepare: (String, StoreBody) throws -> (HTTPRequest, Expected),
                              check: (String, Expected, Result<HTTPResponse, Error>) throws -> Void) -> [Error?] {
        var results = [Error?](repeating: nil, count: items.count)
        var prepared: [(index: Int, request: HTTPRequest, expected: Expected)] = []
        for (i, item) in items.enumerated() {
            do {
                let (request, expected) = try prepare(item.key, item.body)
                prepared.append((i, request, expected))
            } catch {
                results[i] = error
            }
        }
        let answers = send(prepared.map(\.request), width)
        for (p, answer) in zip(prepared, answers) {
            do { try check(items[p.index].key, p.expected, answer) } catch { results[p.index] = error }
        }
        return results
    }
}
