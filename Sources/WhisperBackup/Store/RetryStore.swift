/// Retries transient failures (connection errors, 5xx, 429, SlowDown: the backend says
/// which) with exponential backoff and full jitter. Not-found and permanent errors pass at once.
public final class RetryStore: Store {
    let base: Store
    let attempts: Int
    let firstDelay: Double
    let maxDelay: Double

    public init(_ base: Store, attempts: Int, firstDelay: Double = 0.2, maxDelay: Double = 10) {
        self.base = base
        self.attempts = max(1, attempts)
        self.firstDelay = firstDelay
        self.maxDelay = maxDelay
    }

    public var location: String { base.location }

    func retrying<T>(_ body: () throws -> T) throws -> T {
        var attempt = 1
        while true {
            do {
                return try body()
            } catch let e as StoreError where e.kind == .transient && attempt < attempts && !Signals.stopRequested {
                let cap = min(maxDelay, firstDelay * Double(1 << min(attempt - 1, 20)))
                Waiting.willWait()
                system_sleep(Double.random(in: 0...cap))
                attempt += 1
            }
        }
    }

    public func prepare() throws { try retrying { try base.prepare() } }
    public func create() throws { try retrying { try base.create() } }
    public func put(_ key: String, body: StoreBody) throws { try retrying { try base.put(key, body: body) } }
    public func putMany(_ items: [(key: String, body: StoreBody)]) -> [Error?] {
        var results = base.putMany(items)
        for (i, e) in results.enumerated() where (e as? StoreError)?.kind == .transient {
            do { try put(items[i].key, body: items[i].body); results[i] = nil } catch { results[i] = error }
        }
        return results
    }
    public func get(_ key: String, to path: String) throws { try retrying { try base.get(key, to: path) } }
    public func link(_ key: String, as path: String) throws -> Bool { try retrying { try base.link(key, as: path) } }
    public func head(_ key: String) throws -> StoreObject? { try retrying { try base.head(key) } }
    public func localFile(_ key: String) -> String? { base.localFile(key) }
    public func delete(_ keys: [String]) throws -> [(key: String, error: Error)] {
        var pending = keys
        var attempt = 1
        while true {
            let failed = try retrying { try base.delete(pending) }
            let transient = failed.filter { ($0.error as? StoreError)?.kind == .transient }
            if transient.isEmpty || attempt >= attempts { return failed }
            pending = transient.map(\.key)
            Waiting.willWait()
            system_sleep(Double.random(in: 0...min(maxDelay, firstDelay * Double(1 << attempt))))
            attempt += 1
        }
    }

    /// A listing that fails part way is restarted whole; objects already passed to `each`
    /// are not passed again.
    public var listsRanges: Bool { base.listsRanges }
    public func list(prefix: String, startAfter: String?, sizes: Bool, _ each: (StoreObject) throws -> Void) throws {
        var last: String? = nil
        try retrying {
            // A listing that failed part way resumes after the last key it gave, where the
            // store can start there.
            try base.list(prefix: prefix, startAfter: base.listsRanges ? (last ?? startAfter) : startAfter, sizes: sizes) { obj in
                if let l = last, !l.utf8.lexicographicallyPrecedes(obj.key.utf8) { return }
                try each(obj)
                last = obj.key
            }
        }
    }
}
