/// The small object that identifies a store (`PREFIX.wsp-store-id`, a random id), written at
/// its first push. A local state is trusted only while the store holds the marker the state
/// was written against: a store emptied or replaced behind the state's back is refilled in
/// full, never silently skipped.
public enum StoreMarker {
    public static func key(_ layout: StoreLayout) -> String { layout.prefix + ".wsp-store-id" }

    /// The store's id, or nil if it has none.
    public static func read(_ store: Store, _ layout: StoreLayout) throws -> String? {
        let scratch = system_getenv("TMPDIR") ?? "/tmp"
        do {
            let text = String(decoding: try store.getBytes(key(layout), scratchDir: scratch), as: UTF8.self)
            let id = text.split(separator: "\n").first.map(String.init) ?? ""
            return id.isEmpty ? nil : id
        } catch let e as StoreError where e.kind == .notFound {
            return nil
        }
    }

    /// The store's id, creating the marker if the store has none.
    public static func readOrCreate(_ store: Store, _ layout: StoreLayout) throws -> String {
        if let id = try read(store, layout) { return id }
        var rnd = [UInt8](repeating: 0, count: 16)
        for i in rnd.indices { rnd[i] = UInt8.random(in: 0...255) }
        let id = Hex.encode(rnd)
        try store.put(key(layout), body: .bytes(Array((id + "\n").utf8)))
        return try read(store, layout) ?? id
    }
}
