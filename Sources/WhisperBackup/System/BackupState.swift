#if canImport(Glibc)
import Glibc
#endif

/// What the last push stored for one metric, and the file's stat when it was read.
public struct StateEntry: Equatable, Sendable {
    public var size: Int64
    public var inode: UInt64
    public var device: UInt64
    public var mtimeNs: Int64
    public var ctimeNs: Int64
    public var hash: String
    /// The stored version's time (seconds since the epoch) and object size.
    public var time: Int64
    public var storedSize: Int64
    /// For a delta version, the version it applies to as `BASETIME.BASESHA256` (so that an
    /// unchanged file's record names the version's key); nil for a full version.
    public var base: String?

    public init(size: Int64, inode: UInt64, device: UInt64, mtimeNs: Int64, ctimeNs: Int64,
                hash: String, time: Int64, storedSize: Int64, base: String? = nil) {
        self.size = size
        self.inode = inode
        self.device = device
        self.mtimeNs = mtimeNs
        self.ctimeNs = ctimeNs
        self.hash = hash
        self.time = time
        self.storedSize = storedSize
        self.base = base
    }

    /// The journal line of `metric` (before its checksum): nine fields, ten for a delta.
    func line(_ metric: String) -> String {
        "\(metric)\t\(size)\t\(inode)\t\(device)\t\(mtimeNs)\t\(ctimeNs)\t\(hash)\t\(time)\t\(storedSize)" + (base.map { "\t" + $0 } ?? "")
    }

    /// Whether `st` is the stat this entry was taken from: then the file was not written since.
    public func matches(_ st: stat) -> Bool {
        Int64(st.st_size) == size && UInt64(st.st_ino) == inode && UInt64(st.st_dev) == device
            && st.mtimeNanoseconds == mtimeNs && st.ctimeNanoseconds == ctimeNs
    }

    /// `ino:dev:mtime:ctime:size`, carried in snapshot records from wsp-snap to wsp-push.
    public var statField: String { "\(inode):\(device):\(mtimeNs):\(ctimeNs):\(size)" }

    public static func parseStat(_ field: String) -> (inode: UInt64, device: UInt64, mtimeNs: Int64, ctimeNs: Int64, size: Int64)? {
        let p = field.split(byte: UInt8(ascii: ":"), omittingEmpty: true)
        guard p.count == 5, let i = UInt64(p[0]), let d = UInt64(p[1]), let m = Int64(p[2]), let c = Int64(p[3]), let s = Int64(p[4]) else { return nil }
        return (i, d, m, c, s)
    }
}

/// The local record of what was pushed to one store, so an unchanged file costs a stat():
/// a directory with a `store` file (the store's URL and the id of its marker object) and
/// append-only journals (`shards/`), so a lookup loads only the entries near the directory
/// being walked and memory stays flat in the size of the tree. A metric's lines go to the
/// journal its directory shares with its sibling directories (named by their parent), so a
/// first backup of a tree of small directories creates a file per parent, not one per
/// directory; once that is past `sharedCap`, or once the directory has a journal of its own
/// (earlier versions kept one per directory), to its directory's journal, which then holds
/// its newest line (`journals`).
///
/// Safe under concurrent writers and crashes: each update is one `write(2)` of one line with
/// O_APPEND, carrying its own checksum; a torn or damaged line is ignored, which only costs a
/// re-read of that file, never a missed change.
public final class BackupState {
    public let dir: String
    /// The journals last read, the most recently used last: walking sibling directories
    /// reads their shared journal once.
    private var cached: [(shard: String, entries: [String: StateEntry])] = []
    static let cachedJournals = 4
    /// Entries kept in `cached` beyond the journal in use: a directory of 100,000 metrics
    /// keeps only its own.
    static let cachedEntriesLimit = 100_000
    /// Asked about each entry before `lookup` trusts it, when the store confirms entries one
    /// at a time (`StateCheck.ByMetric`); the journals a lookup reads are then also rid of
    /// their superseded lines, as the one-pass check does.
    public var vouches: ((String, StateEntry) -> Bool)?

    public init(dir: String) throws {
        self.dir = dir
        try Path.makeDirectories(Path.join(dir, "shards"))
    }

    /// The store this state belongs to: its URL, the id of its marker, and the non-secret
    /// settings needed to reach it again (endpoint, region, addressing); credentials come from
    /// the environment as for any tool.
    public struct Owner: Equatable {
        public var url: String
        public var id: String
        public var endpoint: String
        public var region: String
        public var pathStyle: String
        /// `pathStyle` is "path", "virtual" or "" (the store's default); Pipeline/StateOwner.swift
        /// converts from and to a store's settings.
        public init(url: String, id: String, endpoint: String, region: String, pathStyle: String) {
            self.url = url
            self.id = id
            self.endpoint = endpoint
            self.region = region
            self.pathStyle = pathStyle
        }
        init(lines: [String]) {
            func at(_ i: Int) -> String { i < lines.count ? lines[i] : "" }
            url = at(0); id = at(1); endpoint = at(2); region = at(3); pathStyle = at(4)
        }
        var text: String { [url, id, endpoint, region, pathStyle].joined(separator: "\n") + "\n" }
    }

    private var cachedOwner: Owner?? = nil

    /// The store this state belongs to, or nil (read once per process).
    public func owner() -> Owner? {
        if let o = cachedOwner { return o }
        let o = readOwner()
        cachedOwner = .some(o)
        return o
    }

    func readOwner() -> Owner? {
        guard let fd = try? FileDescriptor.open(Path.join(dir, "store"), O_RDONLY),
              let bytes = try? fd.closeAfter({ try fd.readAll() }) else { return nil }
        let o = Owner(lines: String(decoding: bytes, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false).map(String.init))
        return o.id.isEmpty || o.url.isEmpty ? nil : o
    }

    /// Makes this state belong to `owner`: when it belonged to another store (or none), every
    /// entry is dropped first, so nothing recorded against another store is trusted.
    public func claim(_ owner: Owner) throws {
        if let current = readOwner(), current.id == owner.id {
            if current != owner { try AtomicFile.write(Path.join(dir, "store"), bytes: Array(owner.text.utf8), placement: .replace) }
            cachedOwner = .some(owner)
            return
        }
        let shards = Path.join(dir, "shards")
        for e in (try? system_readdir(shards)) ?? [] { _ = try? system_unlink(Path.join(shards, e.name)) }
        cached = []
        try AtomicFile.write(Path.join(dir, "store"), bytes: Array(owner.text.utf8), placement: .replace)
        cachedOwner = .some(owner)
    }

    /// A lock on the state directory, for the one-time claim by concurrent pushes.
    public func withLock<R>(_ body: () throws -> R) throws -> R {
        let fd = try FileDescriptor.open(Path.join(dir, "lock"), O_RDWR | O_CREAT, mode: 0o600)
        return try fd.closeAfter {
            try FileLock.lock(fd, .exclusive, timeout: 120)
            defer { FileLock.unlock(fd) }
            return try body()
        }
    }

    public func lookup(_ metric: String) -> StateEntry? {
        let (directory, shared) = BackupState.journals(metric)
        guard let entry = entries(directory)[metric] ?? shared.flatMap({ entries($0)[metric] }) else { return nil }
        if let vouches, !vouches(metric, entry) {
            setCached(metric, nil)
            return nil
        }
        return entry
    }

    public func record(_ metric: String, _ e: StateEntry) throws {
        if let error = record([(metric, e)]).first ?? nil { throw error }
    }

    /// `record` for several metrics, in order: the lines that go to one journal are appended
    /// with one write (a batch of a backup wrote a line at a time: an open, a lock and a close
    /// per stored file). The error of each metric, or nil.
    public func record(_ items: [(metric: String, entry: StateEntry)]) -> [Error?] {
        var errors = [Error?](repeating: nil, count: items.count)
        var groups: [(journals: (directory: String, shared: String?), items: [Int])] = []
        var groupOf: [String: Int] = [:]
        for (i, item) in items.enumerated() {
            let journals = BackupState.journals(item.metric)
            if let g = groupOf[journals.directory] {
                groups[g].items.append(i)
            } else {
                groupOf[journals.directory] = groups.count
                groups.append((journals, [i]))
            }
        }
        for group in groups {
            let bytes = group.items.flatMap { BackupState.sealed(items[$0].entry.line(items[$0].metric)) }
            do {
                let shard = try append(bytes, to: group.journals)
                if let c = cached.firstIndex(where: { $0.shard == shard }) {
                    for i in group.items { cached[c].entries[items[i].metric] = items[i].entry }
                }
            } catch {
                for i in group.items { errors[i] = error }
            }
        }
        return errors
    }

    /// Drops what the state vouches for `metric` (its versions were removed from the store):
    /// a line `METRIC - CHECKSUM`, which overrides every earlier line of the metric, in each
    /// journal that may hold one (compaction drops the entry and the line together).
    public func forget(_ metric: String) throws {
        let (directory, shared) = BackupState.journals(metric)
        for shard in [directory] + (shared.map { [$0] } ?? []) where Path.exists(shardPath(shard)) {
            try append(BackupState.sealed("\(metric)\t-"), shard: shard)
        }
        setCached(metric, nil)
    }

    /// The entries of a journal, from `cached` or read (and made the most recent).
    private func entries(_ shard: String) -> [String: StateEntry] {
        if let i = cached.firstIndex(where: { $0.shard == shard }) {
            if i != cached.count - 1 { cached.append(cached.remove(at: i)) }
            return cached[cached.count - 1].entries
        }
        let read = load(shard, superseded: vouches != nil)
        cached.append((shard, read))
        var total = cached.reduce(0) { $0 + $1.entries.count }
        while cached.count > 1, cached.count > BackupState.cachedJournals || total > BackupState.cachedEntriesLimit {
            total -= cached.removeFirst().entries.count
        }
        return read
    }

    private func setCached(_ metric: String, _ e: StateEntry?) {
        for i in cached.indices where cached[i].entries[metric] != nil { cached[i].entries[metric] = e }
    }

    static func sealed(_ line: String) -> [UInt8] {
        Array((line + "\t" + Array(line.utf8).withUnsafeBytes { BackupState.checksum($0) } + "\n").utf8)
    }

    func shardPath(_ shard: String) -> String { Path.join(Path.join(dir, "shards"), shard) }

    /// Appends lines of metrics of one directory to the journal that takes them
    /// (`journals`), and returns the journal's name. Lines of more than a few metrics go to
    /// their directory's journal, so a shared one stays about `sharedCap` long.
    func append(_ bytes: [UInt8], to journals: (directory: String, shared: String?)) throws -> String {
        let (directory, shared) = journals
        if let shared, bytes.count <= BackupState.sharedCap / 8, !Path.exists(shardPath(directory)),
           try append(bytes, shard: shared, below: BackupState.sharedCap) {
            return shared
        }
        try append(bytes, shard: directory)
        return directory
    }

    /// Appends lines to a journal with one `write(2)` (concurrent appenders never
    /// interleave inside a line), under a shared lock on the journal that compaction takes
    /// exclusively; a journal replaced by a compaction meanwhile is opened again, so no line
    /// lands in a file that is gone. With `below`, writes nothing and returns false when the
    /// journal is that long already.
    @discardableResult
    func append(_ bytes: [UInt8], shard: String, below cap: Int64? = nil) throws -> Bool {
        let path = shardPath(shard)
        for _ in 0..<100 {
            let fd = try FileDescriptor.open(path, O_WRONLY | O_CREAT | O_APPEND, mode: 0o600)
            let appended: Bool? = try fd.closeAfter {
                if let cap, Int64(try fd.stat().st_size) >= cap { return nil }
                return try FileLock.appendIfCurrent(bytes, to: fd)
            }
            guard let appended else { return false }
            if appended { return true }
        }
        throw Errno(EAGAIN, call: "append", path: path)
    }

    /// The live entries of a journal and its number of lines, as they are (no compaction).
    func read(_ shard: String) -> (entries: [String: StateEntry], lines: Int) {
        guard let fd = try? FileDescriptor.open(shardPath(shard), O_RDONLY),
              let bytes = try? fd.closeAfter({ try fd.readAll() }) else { return ([:], 0) }
        let (entries, lines, _) = BackupState.parseJournal(bytes)
        return (entries, lines)
    }

    /// Reads a journal; later lines override earlier ones. Parsed on bytes: an unchanged run
    /// reads a journal or two per whisper directory, so this is most of its work. A journal that
    /// holds more than twice its live entries (history of changed files) is compacted (with
    /// `superseded`: any journal with a line that a later one overrides).
    func load(_ shard: String, superseded: Bool = false) -> [String: StateEntry] {
        let (entries, lines) = read(shard)
        if superseded ? lines > entries.count : BackupState.needsCompaction(lines: lines, live: entries.count) {
            _ = try? compact(shard, superseded: superseded) { _, _, _ in nil }
        }
        return entries
    }

    /// The live entries of a journal and its number of lines; with `offsets`, also where each
    /// live entry's line starts.
    static func parseJournal(_ bytes: [UInt8], offsets: Bool = false) -> (entries: [String: StateEntry], lines: Int, offsets: [String: Int]) {
        var out: [String: StateEntry] = [:]
        var at: [String: Int] = [:]
        var lines = 0
        bytes.withUnsafeBufferPointer { buf in
            var start = 0
            while start < buf.count {
                let end = UnsafeBufferPointer(rebasing: buf[start...]).firstIndex(of: 10).map { start + $0 } ?? buf.count
                lines += 1
                switch BackupState.parse(UnsafeBufferPointer(rebasing: buf[start..<end])) {
                case .entry(let metric, let entry):
                    out[metric] = entry
                    if offsets { at[metric] = start }
                case .forget(let metric): out[metric] = nil
                case nil: break
                }
                start = end + 1
            }
        }
        return (out, lines, at)
    }

    /// Where a journal stood: its inode and size.
    public struct Mark: Sendable {
        var inode: UInt64
        var size: Int64
    }

    /// Every journal's mark, taken before a listing of the store: lines written after it
    /// record versions stored after the listing began, which it need not show.
    public func marks() throws -> NameTable<Mark> {
        var out = NameTable<Mark>()
        try forEachShard { shard in
            if let st = try? system_stat(shardPath(shard)) { out.append(shard, Mark(inode: UInt64(st.st_ino), size: Int64(st.st_size))) }
        }
        out.seal()
        return out
    }

    /// How `compact` asks about an entry.
    public enum Judgement {
        /// Its line was in the journal when the mark was taken.
        case marked
        /// The journal was rewritten since the mark: the line may be older or newer.
        case unsure
    }

    /// Whether a journal is worth rewriting: more than twice its live entries, with some
    /// slack so that a small directory is not rewritten for every change.
    static func needsCompaction(lines: Int, live: Int) -> Bool { lines > 2 * live + 8 }

    /// Rewrites one journal with its live entries only (a shared journal's entry whose
    /// directory's journal has one of the metric is not live), under an exclusive lock on it (so no
    /// append is lost), atomically (a temp file renamed over it: a crash leaves the old
    /// journal or the new one). `reject` returns a reason to drop an entry, or nil to keep it;
    /// with a `mark`, entries whose line was written after it are kept without asking.
    /// Returns the entries dropped, with their reasons. The journal is rewritten only when
    /// something is dropped or it holds more than twice its live entries (with `superseded`:
    /// any line that a later one overrides).
    @discardableResult
    public func compact(_ shard: String, superseded: Bool = false, mark: Mark?? = nil,
                        reject: (String, StateEntry, Judgement) throws -> String?) throws -> [(metric: String, entry: StateEntry, reason: String)] {
        let path = shardPath(shard)
        let fd: FileDescriptor
        do { fd = try FileDescriptor.open(path, O_RDWR) } catch Errno.noSuchFileOrDirectory { return [] }
        return try fd.closeAfter {
            try FileLock.lock(fd, .exclusive, timeout: 60)
            // A journal replaced by another compaction while this one waited: nothing to do.
            guard let now = try? system_stat(path), let mine = try? fd.stat(), now.st_ino == mine.st_ino else { return [] }
            let (entries, lines, offsets) = BackupState.parseJournal(try fd.readAll(sizeHint: Int(mine.st_size) + 1), offsets: mark != nil)
            // With a mark: lines past it (same journal) or a journal made since are news.
            let sameJournal = mark.map { $0.map { $0.inode == UInt64(mine.st_ino) } ?? false }
            var kept: [(String, StateEntry)] = []
            var dropped: [(metric: String, entry: StateEntry, reason: String)] = []
            // A shared journal's entry whose directory's journal has a newer one is no
            // longer the metric's: dropped without asking (sorted, a directory is read once).
            var directory: (shard: String, entries: [String: StateEntry]) = ("", [:])
            for (metric, entry) in entries.sorted(by: { $0.key.utf8.lexicographicallyPrecedes($1.key.utf8) }) {
                let own = BackupState.journals(metric)
                if own.shared == shard {
                    if directory.shard != own.directory { directory = (own.directory, read(own.directory).entries) }
                    if directory.entries[metric] != nil { continue }
                }
                var reason: String? = nil
                switch (mark, sameJournal) {
                case (.some(nil), _):
                    break   // no journal at the mark: every line is news
                case (.some(.some(let m)), true?):
                    if offsets[metric, default: 0] < Int(m.size) { reason = try reject(metric, entry, .marked) }
                case (.some, _):
                    reason = try reject(metric, entry, .unsure)
                case (nil, _):
                    reason = try reject(metric, entry, .marked)
                }
                if let reason { dropped.append((metric, entry, reason)) } else { kept.append((metric, entry)) }
            }
            guard !dropped.isEmpty || (superseded ? lines > kept.count : BackupState.needsCompaction(lines: lines, live: kept.count)) else { return [] }
            var text: [UInt8] = []
            for (metric, e) in kept {
                text += BackupState.sealed(e.line(metric))
            }
            // Not synced: a journal a power loss empties or damages costs re-reads, never a lie.
            do {
                try AtomicFile.write(path, bytes: text, mode: 0o600, placement: .replace, durable: false)
            } catch where dropped.isEmpty {
                return []   // only compaction failed (a full disk): the journal stays as true as it was
            }
            cached.removeAll { $0.shard == shard }
            return dropped
        }
    }

    /// Calls `body` with the name of every journal of the state (the names of `shards/`,
    /// temp files of a compaction excluded), in directory order. The names are taken in one
    /// pass over the directory first, into a file of their own (unlinked at once, so nothing
    /// is left behind), and read back a block at a time: memory stays flat however many
    /// journals a large tree makes (one for each parent of whisper directories, at least), and `body` may rewrite journals
    /// (a rename into the directory) without a name being missed or the pass disturbed.
    /// Journals made after the pass began may be left out.
    public func forEachShard(_ body: (String) throws -> Void) throws {
        let spillPath = AtomicFile.tempPath(for: Path.join(dir, "journals"))
        let spill = try FileDescriptor.open(spillPath, O_RDWR | O_CREAT | O_EXCL, mode: 0o600)
        _ = try? system_unlink(spillPath)
        try spill.closeAfter {
            // Names end in a NUL, which no name holds.
            var buffer: [UInt8] = []
            buffer.reserveCapacity(BackupState.spillBlock)
            try system_forEachEntry(Path.join(dir, "shards")) { e in
                guard !e.name.hasPrefix(bytes: ".") else { return }
                buffer.append(contentsOf: e.name.utf8)
                buffer.append(0)
                if buffer.count >= BackupState.spillBlock {
                    try buffer.withUnsafeBytes { try spill.writeAll($0) }
                    buffer.removeAll(keepingCapacity: true)
                }
            }
            try buffer.withUnsafeBytes { try spill.writeAll($0) }
            var block = [UInt8](repeating: 0, count: BackupState.spillBlock)
            var offset: Int64 = 0
            var partial: [UInt8] = []
            while true {
                let n = try block.withUnsafeMutableBytes { try spill.read(into: $0, at: offset) }
                if n == 0 { break }
                offset += Int64(n)
                var start = 0
                for i in 0..<n where block[i] == 0 {
                    let name = partial.isEmpty ? String(decoding: block[start..<i], as: UTF8.self)
                                               : String(decoding: partial + block[start..<i], as: UTF8.self)
                    partial.removeAll(keepingCapacity: true)
                    start = i + 1
                    try body(name)
                }
                partial += block[start..<n]
            }
        }
    }

    /// The bytes of journal names written or read at a time by `forEachShard`.
    static let spillBlock = 64 * 1024

    /// One journal line: nine tab-separated fields (ten for a delta version: its base) and the
    /// checksum of the text before it. Earlier versions ignore a line of ten fields: a re-read.
    enum Line {
        case entry(String, StateEntry)
        /// `METRIC -`: the metric's versions were removed; the state vouches for nothing.
        case forget(String)
    }

    static func parse(_ line: UnsafeBufferPointer<UInt8>) -> Line? {
        guard let lastTab = line.lastIndex(of: 9) else { return nil }
        let body = UnsafeBufferPointer(rebasing: line[..<lastTab])
        guard line[(lastTab + 1)...].elementsEqual(checksum(UnsafeRawBufferPointer(body)).utf8) else { return nil }
        var fields: [UnsafeBufferPointer<UInt8>] = []
        fields.reserveCapacity(9)
        var from = 0
        for i in 0...body.count where i == body.count || body[i] == 9 {
            fields.append(UnsafeBufferPointer(rebasing: body[from..<i]))
            from = i + 1
        }
        if fields.count == 2, fields[1].count == 1, fields[1][0] == UInt8(ascii: "-") {
            return .forget(String(decoding: fields[0], as: UTF8.self))
        }
        let base = fields.count == 10 ? String(decoding: fields[9], as: UTF8.self) : nil
        if let base, base.utf8.count != 16 + 1 + 64 { return nil }
        guard fields.count == 9 || base != nil, let size = integer(fields[1]), let ino = integer(fields[2]), let dev = integer(fields[3]),
              let m = integer(fields[4]), let c = integer(fields[5]), Hex.isHex(fields[6], length: 64),
              let t = integer(fields[7]), let gz = integer(fields[8]) else { return nil }
        let entry = StateEntry(size: size, inode: UInt64(bitPattern: ino), device: UInt64(bitPattern: dev), mtimeNs: m, ctimeNs: c,
                               hash: String(decoding: fields[6], as: UTF8.self), time: t, storedSize: gz, base: base)
        return .entry(String(decoding: fields[0], as: UTF8.self), entry)
    }

    /// A decimal integer, optionally negative (an inode or device number above Int64.max is
    /// written unsigned and read back by its bit pattern).
    static func integer(_ digits: UnsafeBufferPointer<UInt8>) -> Int64? {
        var i = 0, negative = false
        if digits.first == UInt8(ascii: "-") { negative = true; i = 1 }
        guard i < digits.count, digits.count - i <= 20 else { return nil }
        var v: UInt64 = 0
        while i < digits.count {
            let d = digits[i] &- UInt8(ascii: "0")
            guard d < 10 else { return nil }
            let (m, o1) = v.multipliedReportingOverflow(by: 10)
            let (s, o2) = m.addingReportingOverflow(UInt64(d))
            guard !o1, !o2 else { return nil }
            v = s
            i += 1
        }
        if negative { return v <= UInt64(Int64.max) ? -Int64(v) : nil }
        return Int64(bitPattern: v)
    }

    /// The journals that may hold `metric`'s lines: its directory's, whose line is the newer
    /// when both have one, and the one its directory shares with its siblings (nil at the
    /// top, where the two are one).
    static func journals(_ metric: String) -> (directory: String, shared: String?) {
        let directory = shardName(metric), shared = siblingsName(metric)
        return (directory, shared == directory ? nil : shared)
    }

    /// The size past which a shared journal takes no new lines: about 1,300 entries, so a
    /// lookup reads at most that much more than its directory's, however wide the tree.
    static let sharedCap: Int64 = 256 * 1024

    /// The name shared by `metric`'s directory and its siblings: their parent's ("@" at the
    /// top); long names are hashed.
    static func siblingsName(_ metric: String) -> String {
        guard let dot = metric.utf8.lastIndex(of: UInt8(ascii: ".")) else { return "@" }
        return shardName(String(metric[..<dot]))
    }

    /// One journal per parent metric path (a whisper directory); long names are hashed.
    static func shardName(_ metric: String) -> String {
        let parent = metric.utf8.lastIndex(of: UInt8(ascii: ".")).map { String(metric[..<$0]) } ?? ""
        let name = parent.isEmpty ? "@" : parent
        return name.utf8.count > 200 ? Digest.sha256Hex(Array(name.utf8)) : name
    }

    /// A journal line's checksum: the first 16 hex digits of the SHA-256 of its text.
    static func checksum(_ text: UnsafeRawBufferPointer) -> String {
        Hex.encode(Array(Digest.hash(.sha256, text).prefix(8)))
    }
}

/// Names packed in one buffer (a few bytes of overhead a name, not a String's 40 or more):
/// lists of a directory's entries that can be large.
public struct NameList: Sequence {
    private var bytes: [UInt8] = []
    private var ends: [UInt32] = []

    public init() {}

    public var count: Int { ends.count }

    public mutating func append(_ name: String) {
        bytes.append(contentsOf: name.utf8)
        ends.append(UInt32(bytes.count))
    }

    public subscript(i: Int) -> String {
        String(decoding: bytes[range(i)], as: UTF8.self)
    }

    private func range(_ i: Int) -> Range<Int> { (i == 0 ? 0 : Int(ends[i - 1]))..<Int(ends[i]) }

    /// Whether name `i` (followed by `suffix`, if given) sorts before name `j` (with its
    /// own), byte by byte.
    public func precedes(_ i: Int, _ iSuffix: UInt8?, _ j: Int, _ jSuffix: UInt8?) -> Bool {
        let a = range(i), b = range(j)
        return bytes.withUnsafeBufferPointer { p in
            var x = a.lowerBound, y = b.lowerBound
            while true {
                let cx: UInt8? = x < a.upperBound ? p[x] : (x == a.upperBound ? iSuffix : nil)
                let cy: UInt8? = y < b.upperBound ? p[y] : (y == b.upperBound ? jSuffix : nil)
                guard let c1 = cx else { return cy != nil }
                guard let c2 = cy else { return false }
                if c1 != c2 { return c1 < c2 }
                x += 1
                y += 1
            }
        }
    }

    public func makeIterator() -> AnyIterator<String> {
        var i = 0
        return AnyIterator {
            guard i < ends.count else { return nil }
            defer { i += 1 }
            return self[i]
        }
    }
}

/// Values by the first 8 bytes of the SHA-256 of a name, sorted for binary search: 8 bytes a
/// name besides the value (a dictionary of String keys takes ten times that), for tables of
/// every journal or every metric of a store.
public struct NameTable<Value> {
    private var rows: [(name: UInt64, value: Value)] = []

    public init() {}

    static func key(_ name: String) -> UInt64 {
        Digest.hash(.sha256, Array(name.utf8)).prefix(8).reduce(0) { $0 << 8 | UInt64($1) }
    }

    public mutating func append(_ name: String, _ value: Value) { rows.append((NameTable.key(name), value)) }

    /// Sorts the rows; lookups come after.
    public mutating func seal() { rows.sort { $0.name < $1.name } }

    public subscript(name: String) -> Value? {
        let key = NameTable.key(name)
        var lo = 0, hi = rows.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if rows[mid].name < key { lo = mid + 1 } else { hi = mid }
        }
        return lo < rows.count && rows[lo].name == key ? rows[lo].value : nil
    }
}
