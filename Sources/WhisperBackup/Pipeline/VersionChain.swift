#if canImport(Glibc)
import Glibc
#endif

/// Why a version could not be rebuilt: one line naming the broken link of its chain.
public struct ChainError: Error, CustomStringConvertible {
    public enum Kind: Sendable {
        /// The object of `key` is damaged: it does not unpack, or does not produce what its
        /// key says (a delta stored under another base is one).
        case damaged
        /// A base link leads nowhere: the base is not listed, is marked bad, or the chain
        /// is too long.
        case broken
    }
    public var kind: Kind
    /// The version at fault: the damaged one, or the delta whose base link is broken.
    public var key: String
    /// The broken link, as `delta KEY: its base TIME.SHA is not in the store`.
    public var link: String
    /// The version asked for, when it is not `key` itself (it depends on the break).
    public var dependent: String?

    public var description: String {
        guard let dependent else { return link }
        return "\(dependent): its chain is broken: \(link)"
    }

    /// This error as seen from `version`, which depends on the broken link.
    func seen(from version: StoredVersion) -> ChainError {
        var e = self
        e.dependent = version.key == key ? nil : version.key
        return e
    }
}

/// Rebuilds any version of one metric from the objects of one listing: walks the base links
/// of delta versions by (time, hash) down to a full version, downloads each object, checks
/// the full version's SHA-256, and applies the deltas in order (`PageDelta.apply` checks the
/// SHA-256 of every step's base and result). Nothing half built is ever returned: a chain that
/// breaks anywhere is a `ChainError` naming the link.
///
/// Memory: one whisper file and one delta at a time. Each object is downloaded to a temp file
/// in `scratch` (registered with `TempFiles`), unpacked and removed before the next; a file://
/// object is read in place.
///
/// The last version rebuilt is kept, and a later rebuild whose chain passes through it starts
/// there instead of at the full version: the versions of a chain, taken oldest first, cost
/// one download each. Links found broken are remembered too, so the versions that depend on
/// a break are each reported without downloading it again.
public final class VersionChain {
    /// Longer chains are refused (the write side stores a full version every `--full-every`
    /// versions; a chain this long is a broken store, not a backup).
    public static let maxLength = 1000

    public let objects: MetricObjects
    let store: Store
    let layout: StoreLayout
    let scratch: String
    /// Versions by what a delta names as its base.
    let byRef: [VersionRef: [StoredVersion]]
    /// The last version rebuilt or checked, and its content.
    var last: (ref: VersionRef, content: [UInt8])?
    /// Versions found not rebuildable, with why.
    var failed: [VersionRef: ChainError] = [:]
    /// Bytes downloaded.
    public private(set) var bytesIn: Int64 = 0

    public init(objects: MetricObjects, store: Store, layout: StoreLayout, scratch: String) {
        self.objects = objects
        self.store = store
        self.layout = layout
        self.scratch = scratch
        var by: [VersionRef: [StoredVersion]] = [:]
        for v in objects.versions where !v.legacy { by[v.ref, default: []].append(v) }
        byRef = by
    }

    /// The content of `version` (listed in `objects` or not), rebuilt and checked.
    public static func materialize(_ version: StoredVersion, objects: MetricObjects, store: Store, layout: StoreLayout,
                                   scratch: String) throws -> [UInt8] {
        try VersionChain(objects: objects, store: store, layout: layout, scratch: scratch).rebuild(version)
    }

    /// The listed version `ref` names, preferring one not marked bad, then a full one (two
    /// objects of one time and content are possible only by hand).
    public func base(_ ref: VersionRef) -> StoredVersion? {
        guard let candidates = byRef[ref] else { return nil }
        return candidates.min { rank($0) < rank($1) }
    }

    private func rank(_ v: StoredVersion) -> Int { (objects.bad[v.key] != nil ? 2 : 0) + (v.isDelta ? 1 : 0) }

    /// Every listed version that `version` depends on, nearest first (for retention: what a
    /// kept version needs). A broken link ends the walk.
    public func dependencies(of version: StoredVersion) -> [StoredVersion] {
        var out: [StoredVersion] = []
        var v = version
        while let ref = v.base, let b = base(ref), out.count < VersionChain.maxLength {
            out.append(b)
            v = b
        }
        return out
    }

    /// The steps that rebuild `version`: the start (a full version, or the last version
    /// rebuilt) and then the deltas to apply, oldest first.
    func plan(_ version: StoredVersion) throws -> (start: StoredVersion, cached: Bool, deltas: [StoredVersion]) {
        var deltas: [StoredVersion] = []
        var v = version
        var child: StoredVersion? = nil
        while true {
            if let e = failed[v.ref] { throw e.seen(from: version) }
            if let last, last.ref == v.ref { return (v, true, deltas.reversed()) }
            if let child, objects.bad[v.key] != nil {
                throw remember(ChainError(kind: .broken, key: child.key, link: "delta \(child.key): its base \(v.key) is marked bad"), child, version)
            }
            guard let ref = v.base else { return (v, false, deltas.reversed()) }
            deltas.append(v)
            guard deltas.count < VersionChain.maxLength else {
                throw ChainError(kind: .broken, key: v.key, link: "delta \(v.key): its chain is longer than \(VersionChain.maxLength) versions")
                    .seen(from: version)
            }
            guard let b = base(ref) else {
                throw remember(ChainError(kind: .broken, key: v.key, link: "delta \(v.key): its base \(ref) is not in the store"), v, version)
            }
            child = v
            v = b
        }
    }

    private func remember(_ e: ChainError, _ at: StoredVersion, _ asked: StoredVersion) -> ChainError {
        failed[at.ref] = e
        return e.seen(from: asked)
    }

    /// The content of `version`, rebuilt and checked; the whisper header too. The deltas are
    /// applied checking only the SHA-256 of the end of the chain (each object's gzip CRC is
    /// checked as it is unpacked); when that does not match, the chain is applied again
    /// checking every step's, to name the link at fault.
    public func rebuild(_ version: StoredVersion) throws -> [UInt8] {
        let saved = last
        do {
            return try rebuild(version, everyStep: false)
        } catch let e as ChainError where e.kind == .damaged && e.key == version.key && e.link.hasSuffix(Self.endMismatch) {
            last = saved
            return try rebuild(version, everyStep: true)
        }
    }

    static let endMismatch = "(found checking the end of its chain)"

    func rebuild(_ version: StoredVersion, everyStep: Bool) throws -> [UInt8] {
        let (start, cached, deltas) = try plan(version)
        var content: [UInt8]
        if cached {
            content = last!.content
            last = nil   // the one copy is now `content`, changed in place
        } else {
            last = nil
            do {
                content = try loadFull(start)
            } catch var e as ChainError {
                failed[start.ref] = e
                e = e.seen(from: version)
                throw e
            }
        }
        var base = start
        for d in deltas {
            do {
                try apply(d, to: &content, base: base, hashes: everyStep)
            } catch var e as ChainError {
                failed[d.ref] = e
                e = e.seen(from: version)
                throw e
            }
            base = d
        }
        if !everyStep, !deltas.isEmpty, Hex.encode(Digest.hash(.sha256, content)) != version.hash {
            throw ChainError(kind: .damaged, key: version.key, link: "delta \(version.key): rebuilt, it does not hash to \(version.hash) \(Self.endMismatch)")
        }
        if version.isDelta {
            do {
                _ = try content.withUnsafeBytes { try WhisperHeader($0, fileSize: content.count) }
            } catch {
                let e = ChainError(kind: .damaged, key: version.key, link: "delta \(version.key): bad object: rebuilt, \(error)")
                failed[version.ref] = e
                throw e
            }
        }
        last = (version.ref, content)
        return content
    }

    /// Takes `content` as the checked content of `version` (a full version checked by the
    /// caller), so that rebuilds of its dependents start from it.
    public func remember(_ version: StoredVersion, content: [UInt8]) {
        last = (version.ref, content)
    }

    /// Takes `version` as found damaged by the caller: its dependents are reported without
    /// trying it again.
    public func remember(_ version: StoredVersion, damaged reason: String) {
        failed[version.ref] = ChainError(kind: .damaged, key: version.key, link: "\(version.key): \(reason)")
    }

    /// Downloads `key` to a temp file in `scratch`, hands the path to `body`, removes it. An
    /// object kept as a file (file://) is handed over where it lies: a temp file created and
    /// removed per object costs a restore of delta versions more than the rebuild itself.
    func download<R>(_ v: StoredVersion, _ body: (String) throws -> R) throws -> R {
        let notThere = ChainError(kind: .broken, key: v.key, link: "\(v.key): not in the store when read")
        if let local = store.localFile(v.key) {
            do {
                let size = try system_stat(local).st_size
                let result = try body(local)
                bytesIn += Int64(size)
                return result
            } catch Errno.noSuchFileOrDirectory {
                throw notThere   // listed a moment ago: deleted since (see below)
            }
        }
        let tmp = AtomicFile.tempPath(for: Path.join(scratch, "x"))
        TempFiles.register(tmp)
        defer { _ = try? system_unlink(tmp); TempFiles.unregister(tmp) }
        do {
            try store.get(v.key, to: tmp)
        } catch let e as StoreError where e.kind == .notFound {
            // Listed a moment ago: deleted since (a prune or purge running beside this one).
            throw notThere
        }
        if let st = try? system_stat(tmp) { bytesIn += Int64(st.st_size) }
        return try body(tmp)
    }

    /// A full version's content, checked as a restore checks it (gzip, SHA-256, header).
    func loadFull(_ v: StoredVersion) throws -> [UInt8] {
        try download(v) { path in
            do {
                return try VersionCheck.verify(gzPath: path, expectedHash: v.hash).bytes
            } catch let e as RecordError {
                throw ChainError(kind: .damaged, key: v.key, link: "\(v.key): \(e.reason)")
            }
        }
    }

    /// Applies delta `d` to `content`, which holds `base` (its SHA-256 and the result's
    /// checked with `hashes`).
    func apply(_ d: StoredVersion, to content: inout [UInt8], base: StoredVersion, hashes: Bool) throws {
        let delta: [UInt8] = try download(d) { path in
            do {
                return try Gzip.decompressFile(path)
            } catch let e as GzipError {
                throw ChainError(kind: .damaged, key: d.key, link: "delta \(d.key): bad object: \(e)")
            }
        }
        func damaged(_ why: String) -> ChainError { ChainError(kind: .damaged, key: d.key, link: "delta \(d.key): \(why)") }
        let header: PageDelta.Header
        do {
            header = try delta.withUnsafeBytes { try PageDelta.Header.parse($0) }
        } catch {
            throw damaged("bad object: \(error)")
        }
        guard Hex.encode(header.newHash) == d.hash else {
            throw damaged("bad object: it produces SHA-256 \(Hex.encode(header.newHash)), its key says \(d.hash)")
        }
        guard Hex.encode(header.baseHash) == base.hash, header.baseSize == content.count else {
            throw damaged("applied to \(base.key), it wants a base of SHA-256 \(Hex.encode(header.baseHash)), not \(base.hash)")
        }
        do {
            try PageDelta.apply(delta, to: &content, hashes: hashes)
        } catch {
            let produced = Hex.encode(Digest.hash(.sha256, content))
            if content.count == header.newSize && produced != d.hash {
                throw damaged("applied to \(base.key), it produced SHA \(produced), not \(d.hash)")
            }
            throw damaged("bad object: \(error)")
        }
    }
}
