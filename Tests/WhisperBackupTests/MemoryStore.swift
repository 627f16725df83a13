import Foundation
@testable import WhisperBackup

/// A store in memory, for millisecond tests of pipeline steps and of the store wrappers. It
/// keeps the `Store` contract (sorted listings, missing keys count as deleted) and records
/// every call; `faults` makes the next calls of an operation fail.
final class MemoryStore: Store {
    var objects: [String: [UInt8]] = [:]
    /// Whether the bucket exists: a missing one fails `prepare()` and every operation.
    var exists = true
    /// Operations called, in order ("prepare", "put", "delete"...).
    private(set) var calls: [String] = []
    /// operation -> errors its next calls throw, first first.
    var faults: [String: [StoreError]] = [:]
    let location = "mem://bucket"
    /// Keys whose delete fails (reported per key, as a store reports a refused delete).
    var undeletable: Set<String> = []
    /// The keys of every delete call, in order.
    private(set) var deleteBatches: [[String]] = []

    init(_ objects: [String: [UInt8]] = [:]) { self.objects = objects }

    var keys: [String] { objects.keys.sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) } }

    private func call(_ op: String) throws {
        calls.append(op)
        if let e = faults[op]?.first {
            faults[op]!.removeFirst()
            throw e
        }
        if !exists && op != "prepare" && op != "create" { throw StoreError(.permanent, "\(location): no such bucket") }
    }

    func prepare() throws {
        try call("prepare")
        if !exists { throw StoreError(.notFound, "\(location): bucket does not exist (create it, or pass --create-bucket)") }
    }

    func create() throws {
        try call("create")
        exists = true
    }

    func put(_ key: String, body: StoreBody) throws {
        try call("put")
        switch body {
        case .bytes(let b): objects[key] = b
        case .file(let path), .spoolFile(let path): objects[key] = Array(try Data(contentsOf: URL(fileURLWithPath: path)))
        }
    }

    func get(_ key: String, to path: String) throws {
        try call("get")
        guard let b = objects[key] else { throw StoreError(.notFound, "\(location): \(key): no such object") }
        try Data(b).write(to: URL(fileURLWithPath: path))
    }

    func head(_ key: String) throws -> StoreObject? {
        try call("head")
        return objects[key].map { StoreObject(key: key, size: Int64($0.count)) }
    }

    /// Lists ranges as S3 does (the tests of range listings run here too).
    var listsRanges: Bool { true }
    func list(prefix: String, startAfter: String?, sizes: Bool, _ each: (StoreObject) throws -> Void) throws {
        try call("list")
        for k in keys where k.hasPrefix(prefix) && startAfter.map({ $0.utf8.lexicographicallyPrecedes(k.utf8) }) != false {
            try each(StoreObject(key: k, size: Int64(objects[k]!.count)))
        }
    }

    func delete(_ keys: [String]) throws -> [(key: String, error: Error)] {
        try call("delete")
        deleteBatches.append(keys)
        var failed: [(key: String, error: Error)] = []
        for k in keys {
            if undeletable.contains(k) {
                failed.append((k, StoreError(.permanent, "\(location): \(k): access denied")))
            } else {
                objects[k] = nil
            }
        }
        return failed
    }
}
