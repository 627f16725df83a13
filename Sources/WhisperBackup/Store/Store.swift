#if canImport(Glibc)
import Glibc
#endif

/// One object in a store's listing.
public struct StoreObject: Sendable, Equatable {
    public var key: String
    public var size: Int64
    public init(key: String, size: Int64) {
        self.key = key
        self.size = size
    }
}

/// What an upload sends. A file can be re-read from the start, so a retried PUT resends it whole.
public enum StoreBody: Sendable {
    case file(String)
    case bytes([UInt8])
    /// A spool file the caller discards once the put returns: a store may move it in rather
    /// than copy it (a directory on the same filesystem, so its bytes are written to disk once),
    /// and puts it back where it was when the object is not stored (a retry sends it again).
    case spoolFile(String)
}

/// A failure of a store operation, classified by the backend that saw it.
public struct StoreError: Error, CustomStringConvertible, Sendable {
    public enum Kind: Sendable {
        /// The key (or the bucket/container) does not exist.
        case notFound
        /// Retrying cannot help: bad credentials, access denied, bad request, clock skew.
        case permanent
        /// May succeed if tried again: connection errors, timeouts, 5xx, 429, SlowDown.
        case transient
    }
    public var kind: Kind
    public var message: String
    public init(_ kind: Kind, _ message: String) {
        self.kind = kind
        self.message = message
    }
    public var description: String { message }
}

/// A place that holds objects under string keys: a directory, an S3 bucket, a Swift container.
///
/// The contract every backend keeps (and `StoreConformanceTests` checks):
/// - `put` is atomic: after a crash or failure a key holds either its old object or the
///   complete new one, never a part. Putting an existing key replaces it.
/// - `get` writes the object's bytes to `path` (created or truncated) and fails with a
///   `StoreError` of kind `.notFound` when the key does not exist; any other failure is never
///   reported as not-found.
/// - `head` returns nil only for a missing key.
/// - `list` calls `each` once per object whose key starts with `prefix` (and sorts after
///   `startAfter`, when given), in ascending byte order of keys, skipping the backend's own
///   temp objects; a listing that cannot be completed throws rather than ending early. An
///   error `each` throws ends the listing and comes out of `list` unchanged.
/// - `delete` removes the keys and returns the ones it could not remove with the reason; a key
///   that is already missing counts as removed.
public protocol Store: AnyObject {
    /// The store's URL, without credentials, for messages.
    var location: String { get }
    func put(_ key: String, body: StoreBody) throws
    /// Puts several objects, each as `put` would (atomic); returns one error or nil per item.
    /// A backend may make the batch durable together (a directory: one filesystem sync for
    /// the batch instead of two per object); every item is durable when this returns.
    func putMany(_ items: [(key: String, body: StoreBody)]) -> [Error?]
    func get(_ key: String, to path: String) throws
    /// Makes `path` another name of the object, with no byte copied, where the backend can
    /// (a directory on `path`'s filesystem: a hard link) and returns true; false where it
    /// cannot, and the caller `get`s the object instead. A missing key fails as `get` does.
    /// Whoever holds `path` must never write to it or cut it: it is the stored object.
    func link(_ key: String, as path: String) throws -> Bool
    func head(_ key: String) throws -> StoreObject?
    /// The file that holds the object, where the backend keeps each object as a file (a
    /// directory), so a reader can have it read ahead or read it in place (never write it);
    /// nil elsewhere. Nothing is checked.
    func localFile(_ key: String) -> String?
    /// Every object whose key starts with `prefix` (after `startAfter`), in key order. With
    /// `sizes` false the caller needs no object's size: a backend whose sizes cost a system
    /// call each (file://) may give -1.
    func list(prefix: String, startAfter: String?, sizes: Bool, _ each: (StoreObject) throws -> Void) throws
    /// Whether a listing that starts after a key skips what sorts before it at no cost (S3's
    /// `start-after`, Swift's `marker`), so that one listing of a range of metrics costs its
    /// pages only; false where everything before is walked (file://).
    var listsRanges: Bool { get }
    func delete(_ keys: [String]) throws -> [(key: String, error: Error)]
    /// The opening probe: checks that the directory, bucket or container exists and that the
    /// credentials work, before any record is read. A missing one is a `.notFound`
    /// `StoreError` whose message says how to create it.
    func prepare() throws
    /// Creates the missing directory, bucket or container (`--create-bucket`).
    func create() throws
}

extension Store {
    public func prepare() throws {}
    public func create() throws {}
    public var listsRanges: Bool { false }
    public func link(_ key: String, as path: String) throws -> Bool { false }
    public func localFile(_ key: String) -> String? { nil }

    public func list(prefix: String, startAfter: String?, _ each: (StoreObject) throws -> Void) throws {
        try list(prefix: prefix, startAfter: startAfter, sizes: true, each)
    }

    public func list(prefix: String, _ each: (StoreObject) throws -> Void) throws {
        try list(prefix: prefix, startAfter: nil, sizes: true, each)
    }

    public func putMany(_ items: [(key: String, body: StoreBody)]) -> [Error?] {
        items.map { item in
            do { try put(item.key, body: item.body); return nil } catch { return error }
        }
    }

    /// Reads a small object into memory (markers, legacy `.sha1` files).
    public func getBytes(_ key: String, scratchDir: String) throws -> [UInt8] {
        let tmp = AtomicFile.tempPath(for: Path.join(scratchDir, "x"))
        TempFiles.register(tmp)
        defer { _ = try? system_unlink(tmp); TempFiles.unregister(tmp) }
        try get(key, to: tmp)
        let fd = try FileDescriptor.open(tmp, O_RDONLY)
        return try fd.closeAfter { try fd.readAll() }
    }
}

extension Store {
    /// The response of an HTTP store's request, or the transfer's failure as a classified
    /// `StoreError` naming the store and the operation.
    func response(_ result: Result<HTTPResponse, Error>, what: String) throws -> HTTPResponse {
        do {
            return try result.get()
        } catch let e as HTTPError {
            throw StoreError(e.isTransient ? .transient : .permanent, "\(location): \(what): \(e.message)")
        }
    }
}

extension Result where Failure == Error {
    /// The error, or nil on success.
    var error: Error? {
        if case .failure(let e) = self { return e }
        return nil
    }
}
