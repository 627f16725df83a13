#if canImport(Glibc)
import Glibc
#endif

/// A store in a local or NFS directory: each key is a path under the directory. Writes go to
/// a temp file beside the target, are fsynced and renamed into place, and the directory is
/// fsynced, so a crash never leaves a partial object under a real key.
public final class FileStore: Store {
    public let root: String
    public let location: String
    /// Whether `link` can reach a directory (the spool's): a directory on another filesystem,
    /// or one where a link was refused, is copied into at once. Trying the link for every
    /// object there cost a restore through a tmpfs spool a failed link, and the unlink of the
    /// reused spool file before it, per object.
    private var linkable: [String: Bool] = [:]
    public init(root: String, location: String) {
        self.root = root
        self.location = location
    }

    public func prepare() throws {
        guard let st = try? system_stat(root) else {
            throw StoreError(.notFound, "\(location): directory \(root) does not exist (create it, or pass --create-bucket)")
        }
        guard st.isDirectory else { throw StoreError(.permanent, "\(location): \(root) is not a directory") }
    }

    public func create() throws {
        do { try Path.makeDirectories(root) } catch { throw StoreError(.permanent, "\(location): cannot create \(root): \(error)") }
    }

    func path(_ key: String) throws -> String {
        // Keys come from StoreLayout over validated metric names; refuse anything that could
        // still leave the directory.
        if key.isEmpty || key.hasPrefix(bytes: "/") || key.split(byte: UInt8(ascii: "/"), omittingEmpty: true).contains(where: { $0.sameBytes("..") || $0.sameBytes(".") }) {
            throw StoreError(.permanent, "\(location): refusing key \(key)")
        }
        return Path.join(root, key)
    }

    public func put(_ key: String, body: StoreBody) throws {
        let dest = try path(key)
        try classify(key) {
            try AtomicFile.write(dest, placement: .replace) { out in
                switch body {
                case .bytes(let b): try b.withUnsafeBytes { try out.writeAll($0) }
                case .file(let src), .spoolFile(let src): try FileStore.copy(from: src, to: out)
                }
            }
        }
    }

    /// The batch's objects are made durable with one `syncfs`, put in place by renames, and
    /// the renames made durable with one more: two filesystem syncs for the batch instead of
    /// two fsyncs per object, and atomic per object as `put` is. A spool file on the store's
    /// filesystem is renamed straight to its key after the first sync (`movable`): its bytes
    /// are written once (a copy had the spool's copy written out too: 28% of a first backup's
    /// disk writes) and renamed once. Other bodies are copied to temp files beside their keys
    /// first. A spool file that cannot be renamed across (EXDEV: a bind mount of the same
    /// filesystem) is copied in a second round; one not stored stays in the spool, private.
    public func putMany(_ items: [(key: String, body: StoreBody)]) -> [Error?] {
        if items.count < 2 { return items.map { item in Result { try put(item.key, body: item.body) }.error } }
        var results = [Error?](repeating: nil, count: items.count)
        var dests = [String](repeating: "", count: items.count)
        var temps = [String?](repeating: nil, count: items.count)
        var moves = [String?](repeating: nil, count: items.count)
        defer {
            for t in temps {
                guard let t else { continue }
                _ = try? system_unlink(t)
                TempFiles.unregister(t)
            }
        }
        func fail(_ i: Int, _ error: Error) {
            results[i] = StoreError(.permanent, "\(location): \(items[i].key): \(error)")
        }
        func copyToTemp(_ i: Int) {
            do {
                let tmp = AtomicFile.tempPath(for: dests[i])
                let out = try FileDescriptor.open(tmp, O_WRONLY | O_CREAT | O_EXCL)
                TempFiles.register(tmp)
                temps[i] = tmp
                try out.closeAfter {
                    switch items[i].body {
                    case .bytes(let b): try b.withUnsafeBytes { try out.writeAll($0) }
                    case .file(let src), .spoolFile(let src): try FileStore.copy(from: src, to: out)
                    }
                }
            } catch {
                fail(i, error)
            }
        }
        func placeTemp(_ i: Int) {
            guard let tmp = temps[i] else { return }
            do {
                try system_rename(tmp, dests[i])
                TempFiles.unregister(tmp)
                temps[i] = nil
            } catch {
                fail(i, error)
            }
        }
        let device = (try? system_stat(root))?.st_dev
        for (i, item) in items.enumerated() {
            do {
                dests[i] = try path(item.key)
                try Path.makeDirectories(Path.directory(of: dests[i]))
            } catch {
                fail(i, error)
                continue
            }
            if case .spoolFile(let src) = item.body, let device, FileStore.movable(src, device: device) {
                moves[i] = src
            } else {
                copyToTemp(i)
            }
        }
        do {
            try syncFilesystem()
            var across: [Int] = []
            for i in items.indices where results[i] == nil {
                guard let src = moves[i] else { placeTemp(i); continue }
                system_chmod(src, system_creationMode(0o644))
                do {
                    try system_rename(src, dests[i])
                    continue
                } catch Errno.crossDevice {
                    across.append(i)
                } catch {
                    fail(i, error)
                }
                system_chmod(src, 0o600)   // still the spool's
            }
            if !across.isEmpty {
                for i in across { copyToTemp(i) }
                try syncFilesystem()
                for i in across where results[i] == nil { placeTemp(i) }
            }
            try syncFilesystem()
        } catch {
            for i in results.indices where results[i] == nil { results[i] = StoreError(.permanent, "\(location): \(error)") }
        }
        return results
    }

    /// Whether a spool file can become a stored object by a rename and leave the store as a
    /// copy would: a regular file of this user's with no other name (a hard link elsewhere
    /// could change the object later), on the store's filesystem (`device`; else copied).
    static func movable(_ src: String, device: dev_t) -> Bool {
        guard let st = try? system_lstat(src) else { return false }
        return st.isRegularFile && st.st_nlink == 1 && st.st_uid == system_geteuid() && st.st_dev == device
    }

    private func syncFilesystem() throws {
        let fd = try FileDescriptor.open(root, O_RDONLY | O_DIRECTORY)
        try fd.closeAfter { try system_syncfs(fd.rawValue, path: root) }
    }

    public func get(_ key: String, to dest: String) throws {
        let src = try path(key)
        try classify(key) {
            let fd = try FileDescriptor.open(src, O_RDONLY)
            try fd.closeAfter {
                // Written over whatever `dest` held and cut to length (a reused spool file).
                let out = try FileDescriptor.open(dest, O_WRONLY | O_CREAT)
                try out.closeAfter { try out.truncate(to: try FileStore.copy(from: fd, to: out)) }
            }
        }
    }

    /// A hard link: a restore's spool on the store's filesystem gets each object without a
    /// copy written out to disk (the copy cost a restore a third of its time when the spool
    /// is on disk). Anything but a missing object (another filesystem, a link count at its
    /// limit, hard links refused) leaves the caller to copy.
    public func localFile(_ key: String) -> String? { try? path(key) }

    public func link(_ key: String, as dest: String) throws -> Bool {
        let src = try path(key)
        let dir = Path.directory(of: dest)
        if linkable[dir] == nil {
            if let there = try? system_stat(dir), let here = try? system_stat(root) {
                linkable[dir] = there.st_dev == here.st_dev
            } else {
                linkable[dir] = false
            }
        }
        guard linkable[dir] == true else { return false }
        do {
            do {
                try system_link(src, dest)
            } catch Errno.fileExists {
                try system_unlink(dest)   // a reused spool file: the name is taken for the link
                try system_link(src, dest)
            }
            return true
        } catch Errno.noSuchFileOrDirectory {
            throw StoreError(.notFound, "\(location): \(key): no such object")
        } catch let e as Errno where e.rawValue == EXDEV || e.rawValue == EPERM {
            linkable[dir] = false   // a bind mount of this filesystem; links refused there
            return false
        } catch {
            return false   // this object only (its link count at the limit)
        }
    }

    public func head(_ key: String) throws -> StoreObject? {
        let p = try path(key)
        do {
            let st = try system_stat(p)
            return st.isRegularFile ? StoreObject(key: key, size: Int64(st.st_size)) : nil
        } catch Errno.noSuchFileOrDirectory {
            return nil
        } catch Errno.notDirectory {
            return nil
        } catch {
            throw StoreError(.permanent, "\(location): \(error)")
        }
    }

    public func list(prefix: String, startAfter: String?, sizes: Bool, _ each: (StoreObject) throws -> Void) throws {
        let dirPart: String, namePrefix: String
        if let slash = prefix.utf8.lastIndex(of: UInt8(ascii: "/")) {
            dirPart = String(prefix[..<slash])
            namePrefix = String(prefix[prefix.utf8.index(after: slash)...])
        } else {
            dirPart = ""
            namePrefix = prefix
        }
        // Everything before `startAfter` is walked too (listsRanges is false).
        try walk(dirPart, namePrefix: namePrefix, sizes: sizes) { obj in
            if let startAfter, !startAfter.utf8.lexicographicallyPrecedes(obj.key.utf8) { return }
            try each(obj)
        }
    }

    /// Depth-first, children sorted by name with "/" appended to directories: that is the
    /// ascending order of the full keys. A directory is read in pages of at most `pageEntries`
    /// names, held packed (about 40 bytes each): a page is one pass over the directory that
    /// keeps the smallest names after the last one handed out, as an object store's listing
    /// goes page by page. A store's top directory holds one entry per metric: memory stays
    /// that of a page however many metrics there are, and a directory of no more names than
    /// a page is read once. Without `sizes`, objects are not stat'ed (size -1), unless the
    /// directory's entries do not say their kind.
    private func walk(_ rel: String, namePrefix: String, sizes: Bool, _ each: (StoreObject) throws -> Void) throws {
        let dir = rel.isEmpty ? root : Path.join(root, rel)
        var after: [UInt8]? = nil
        while true {
            var page = Page()
            do {
                try system_forEachEntry(dir, sizes: sizes, exactKinds: true) { e in
                    // Kinds are exact here: symlinks and others are not objects.
                    guard e.name.hasPrefix(bytes: namePrefix), !e.name.hasPrefix(bytes: AtomicFile.tempPrefix),
                          e.kind == .directory || e.kind == .file else { return }
                    if after != nil || page.cutoff != nil {
                        let key = Page.sortKey(e.name, isDir: e.kind == .directory)
                        if let after, !after.lexicographicallyPrecedes(key) { return }
                        if let cutoff = page.cutoff, !key.lexicographicallyPrecedes(cutoff) { return }
                    }
                    page.append(e.name, isDir: e.kind == .directory, size: e.size ?? (sizes ? 0 : -1))
                    if page.count >= 2 * pageEntries { page.keepFirst(pageEntries) }
                }
            } catch Errno.noSuchFileOrDirectory {
                if rel.isEmpty { throw StoreError(.notFound, "\(location): directory \(root) does not exist") }
                return
            } catch Errno.notDirectory {
                return
            } catch {
                throw StoreError(.permanent, "\(location): \(error)")
            }
            page.keepFirst(pageEntries)
            for i in 0..<page.count {
                let name = page.names[i]
                let key = rel.isEmpty ? name : rel + "/" + name
                if page.isDir[i] {
                    try walk(key, namePrefix: "", sizes: sizes, each)
                } else {
                    try each(StoreObject(key: key, size: page.sizes[i]))
                }
            }
            // A pass that kept every name it met was the last.
            guard page.cutoff != nil, page.count > 0 else { return }
            after = Page.sortKey(page.names[page.count - 1], isDir: page.isDir[page.count - 1])
        }
    }

    /// Names of a directory's page, in a walk (about 4 MB, held twice over at most).
    var pageEntries = 100_000

    /// One page of a directory's entries, and, once some were left out, the name (with "/"
    /// for a directory) that every name kept sorts before.
    struct Page {
        var names = NameList()
        var isDir: [Bool] = []
        var sizes: [Int64] = []
        var cutoff: [UInt8]? = nil
        var count: Int { names.count }

        static func sortKey(_ name: String, isDir: Bool) -> [UInt8] { Array(name.utf8) + (isDir ? [UInt8(ascii: "/")] : []) }

        mutating func append(_ name: String, isDir dir: Bool, size: Int64) {
            names.append(name)
            isDir.append(dir)
            sizes.append(size)
        }

        /// Sorts the page and keeps its first `limit` names.
        mutating func keepFirst(_ limit: Int) {
            if count <= 1 && limit >= 1 { return }   // a metric's directory, often
            let slash = UInt8(ascii: "/")
            var order = (0..<Int32(count)).map { $0 }
            order.sort { names.precedes(Int($0), isDir[Int($0)] ? slash : nil, Int($1), isDir[Int($1)] ? slash : nil) }
            var kept = Page()
            kept.cutoff = cutoff
            for o in order.prefix(limit) { kept.append(names[Int(o)], isDir: isDir[Int(o)], size: sizes[Int(o)]) }
            if count > limit, let last = order.prefix(limit).last {
                kept.cutoff = Page.sortKey(names[Int(last)], isDir: isDir[Int(last)])
            }
            self = kept
        }
    }

    public func delete(_ keys: [String]) throws -> [(key: String, error: Error)] {
        var failed: [(key: String, error: Error)] = []
        var dirs = Set<String>()
        for key in keys {
            do {
                let p = try path(key)
                do {
                    try system_unlink(p)
                    dirs.insert(Path.directory(of: p))
                } catch Errno.noSuchFileOrDirectory {}
            } catch {
                failed.append((key, error))
            }
        }
        // Empty metric directories are removed so a listing does not grow forever.
        for d in dirs where d != root {
            _ = try? system_rmdir(d)
        }
        for d in Set(dirs.map { Path.directory(of: $0) }) { try? AtomicFile.syncDirectory(d) }
        return failed
    }

    private func classify(_ key: String, _ body: () throws -> Void) throws {
        do {
            try body()
        } catch let e as Errno where e == .noSuchFileOrDirectory {
            throw StoreError(.notFound, "\(location): \(key): no such object")
        } catch let e as StoreError {
            throw e
        } catch {
            throw StoreError(.permanent, "\(location): \(key): \(error)")
        }
    }

    static func copy(from src: String, to out: FileDescriptor) throws {
        let fd = try FileDescriptor.open(src, O_RDONLY)
        try fd.closeAfter { _ = try copy(from: fd, to: out) }
    }

    /// Copies `fd` to `out`'s position; returns the bytes copied.
    @discardableResult
    static func copy(from fd: FileDescriptor, to out: FileDescriptor) throws -> Int64 {
        var copied: Int64 = 0
        try fd.forEachChunk { copied += Int64($0.count); try out.writeAll($0) }
        return copied
    }
}
