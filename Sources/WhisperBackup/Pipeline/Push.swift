/// `wsp-push`: stores snapshots the store lacks. For each snapshot record
/// `METRIC TIME SHA256 SIZE GZFILE`, a version whose hash equals the metric's newest stored
/// version is not stored again. Writes `METRIC TIME SHA256 KEY SIZE STATUS` (STATUS `stored`,
/// `would-store` or `unchanged`; TIME and KEY name the version that holds the content), and removes the
/// spool file once its content is safely in the store. A snapshot record with field 9 BASE
/// holds a delta: it is stored under a delta key when its base is in the store.
public struct Push {
    public var store: Store
    public var layout: StoreLayout
    public var dryRun: Bool
    /// Where to record what was stored, for the next run's `wsp-snap --state`.
    public var state: BackupState?
    /// Download and check the version a snapshot would be deduplicated against (`--full`):
    /// a damaged one is marked bad and replaced.
    public var checkNewest = false

    public init(store: Store, layout: StoreLayout, dryRun: Bool, state: BackupState? = nil) {
        self.store = store
        self.layout = layout
        self.dryRun = dryRun
        self.state = state
    }

    /// Ties `state` to `store`: writes the store's marker at its first push, and drops every
    /// entry the state holds for another store. Under the state's lock, so concurrent pushes
    /// agree on one marker.
    public static func claim(state: BackupState, store: Store, layout: StoreLayout, url: String, settings: StoreSettings) throws {
        try state.withLock {
            let id = try StoreMarker.readOrCreate(store, layout)
            try state.claim(BackupState.Owner(url: url, id: id, settings: settings))
        }
    }

    /// Records from arguments (xargs) are pushed in batches, so a store can make a batch
    /// durable at once; records from stdin one at a time, so a slow upstream never waits
    /// on a batch. A file:// batch costs two filesystem syncs, which also write out whatever
    /// else is dirty (the spool): 512 rather than 64 made a 30,000-file first backup about 7%
    /// faster here. The spool's bound still holds: a batch is at most the records xargs gave,
    /// whose files are already in the spool.
    public static let batchSize = 512

    public func run(input: RecordInput, output: RecordWriter, diagnostics: Diagnostics) throws {
        defer { output.flush() }   // the records held (RecordWriter.hold)
        diagnostics.expect(input)
        var batch: [Record] = []
        let limit = input.isBuffered ? Push.batchSize : 1
        let health = StoreHealth()
        for record in input.records(until: output) {
            batch.append(record)
            if batch.count >= limit {
                pushBatch(batch, output: output, diagnostics: diagnostics, health: health)
                batch.removeAll(keepingCapacity: true)
            }
        }
        if !batch.isEmpty && !Signals.stopRequested { pushBatch(batch, output: output, diagnostics: diagnostics, health: health) }
        try diagnostics.finish()
    }

    /// Records in a row the store failed through every retry before a push stops trying: the
    /// store is down, and each further record would wait as long. The records after that fail
    /// at once (each still reported), and give their spool files back.
    public static let giveUpAfter = 5

    /// Transient store failures of the records in a row (through the retries).
    final class StoreHealth {
        var failedInARow = 0
        var last = ""
        func note(_ error: Error?) {
            if let e = error as? StoreError, e.kind == .transient {
                failedInARow += 1
                last = e.description
            } else if error == nil {
                failedInARow = 0
            }
        }
        var down: Bool { failedInARow >= Push.giveUpAfter }
    }

    /// Hands back the spool files named by snapshot records (records that will not be stored:
    /// the next run snaps their files again).
    public static func discardSpoolFiles(of records: [Record]) {
        Spool.discard(records.compactMap { $0[4] }.filter(Spool.isSpoolFile))
    }

    /// What the state keeps of a file's stat (`StateEntry`).
    typealias FileStat = (inode: UInt64, device: UInt64, mtimeNs: Int64, ctimeNs: Int64, size: Int64)

    /// A snapshot that the store lacks.
    struct Upload {
        var record: Record
        var version: StoredVersion
        var gzPath: String
        var stat: FileStat?
        /// Damaged versions of the same content with their bad records, removed once this
        /// upload is in place.
        var replaces: [(version: String, bad: String)] = []
    }

    /// Pushes a batch. A record that fails gives its spool file back (the next run snaps the
    /// file again); once the store is down (`giveUpAfter`), records fail without a request.
    func pushBatch(_ records: [Record], output: RecordWriter, diagnostics: Diagnostics, health: StoreHealth) {
        var uploads: [Upload] = []
        // The objects of the batch's metrics in one listing where the store lists ranges
        // cheaply; a listing that fails leaves each record to list its own (and fail alone).
        let toList = records.filter { $0[4] != nil && $0[4] != "-" && (try? MetricName.validate($0.metric)) != nil }.map(\.metric)
        let listed = toList.count > 1 && !health.down ? try? StoreListing.metrics(toList, in: store, layout: layout) : nil
        for record in records {
            if health.down {
                diagnostics.fail(record.metric, "not tried: the store failed \(health.failedInARow) records in a row through the retries (\(health.last))")
                Push.discardSpoolFiles(of: [record])
                continue
            }
            do {
                switch try plan(record, listed: listed?[Array(record.metric.utf8)], diagnostics: diagnostics) {
                case .done(let fields, let outcome):
                    output.hold(Record(fields))
                    diagnostics.done(outcome)
                case .upload(let u):
                    uploads.append(u)
                }
            } catch {
                health.note(error)
                diagnostics.fail(record.metric, error)
                Push.discardSpoolFiles(of: [record])
            }
        }
        if uploads.isEmpty { return }
        output.flush()   // what is answered goes out before the uploads, which take a while
        let results = store.putMany(uploads.map { ($0.version.key, Spool.isSpoolFile($0.gzPath) ? .spoolFile($0.gzPath) : .file($0.gzPath)) })
        // The batch's spool files go back to the spool in one update of its ledger, stored
        // or not (a dry run consumes them too: it would otherwise fill the spool); those the
        // store moved in are gone, and free their room by their sizes.
        defer { Spool.discard(uploads.filter { Spool.isSpoolFile($0.gzPath) }.map { ($0.gzPath, $0.version.size) }) }
        var stored: [(metric: String, stat: FileStat?, version: StoredVersion)] = []
        for (u, error) in zip(uploads, results) {
            health.note(error)
            if let error {
                diagnostics.fail(u.record.metric, error)
                continue
            }
            if !dryRun {
                removeReplaced(u.record.metric, u.replaces, by: u.version, diagnostics: diagnostics)
                stored.append((u.record.metric, u.stat, u.version))
            }
            diagnostics.bytesIn += u.version.size
            diagnostics.bytesOut += u.version.size
            let status = dryRun ? "would-store" : "stored"
            output.hold(Record(u.version.recordFields + [status]))
            diagnostics.done(status)
        }
        // The state once the batch is answered: a line per stored file, a write per journal.
        rememberOrWarn(stored, diagnostics: diagnostics)
    }

    enum Plan {
        case done([String], String)
        case upload(Upload)
    }

    /// `listed`: the metric's objects from the batch's listing, if it was listed.
    func plan(_ record: Record, listed: MetricObjects? = nil, diagnostics: Diagnostics? = nil) throws -> Plan {
        let metric = record.metric
        try MetricName.validate(metric)
        guard let timeText = record[1], let time = Timestamp.parseBasic(Substring(timeText)) else {
            throw RecordError("snapshot record needs TIME in basic form (20261127T035433Z)")
        }
        guard let hash = record[2], Hex.isHex(Substring(hash), length: 64) else {
            throw RecordError("snapshot record needs a SHA-256 in field 3")
        }
        guard let gzPath = record[4] else { throw RecordError("snapshot record has no GZFILE (field 5)") }
        var base: VersionRef? = nil
        if let text = record[8], text != "-" {
            guard let b = VersionRef(Substring(text)) else { throw RecordError("snapshot record's BASE (field 9) is not BASETIME.BASESHA256") }
            base = b
        }
        let stat = record[5].flatMap(StateEntry.parseStat)

        if gzPath == "-" {
            // wsp-snap found the file unchanged since its last push (state): no request at all,
            // provided the state vouched for this very store.
            guard let id = record[7], id == (try storeId()) else {
                throw RecordError("wsp-snap skipped this file on the word of a state for another store; run wsp-snap with this store's --state (or --full)")
            }
            var v = StoredVersion(metric: metric, time: time, hash: hash, key: "", base: base)
            v.key = layout.key(of: v)
            v.size = Int64(record[6] ?? "") ?? 0
            return .done(v.recordFields + ["unchanged"], "unchanged")
        }
        // The version to compare with is the newest stamped at or before this snapshot, give
        // or take `Versions.clockSlack` (same-second bumps below, runs in quick succession): a
        // version stamped later was taken while the clock ran ahead, and neither hides this
        // one nor moves its time.
        // A version is deduplicated against, or built on, only while it is intact: not marked
        // bad, and for a delta every version its chain reaches listed and not marked bad.
        var objects = try listed ?? StoreListing.metric(metric, in: store, layout: layout)
        let newest = objects.versions.last { $0.time <= time + Versions.clockSlack }
        if let newest, newest.hash == hash, objects.isIntact(newest), checkNewest, let reason = try damage(newest, scratch: gzPath) {
            // --full: the version this content would be deduplicated against is damaged.
            diagnostics?.warn("\(Diagnostics.shown(metric)): \(newest.key): \(reason); storing this content again")
            if !dryRun { try store.put(layout.badKey(newest.key), body: .bytes([])) }
            objects.bad[newest.key] = layout.badKey(newest.key)
        }
        let bad = objects.bad
        // Damaged versions of this content: replaced by this upload, or left over from a
        // replacement that was interrupted before it removed them.
        let replaces = objects.versions.filter { $0.hash == hash && bad[$0.key] != nil }.map { ($0.key, bad[$0.key]!) }
        if !dryRun, !objects.strayBadKeys.isEmpty { _ = try? store.delete(objects.strayBadKeys) }
        if let newest, newest.hash == hash, objects.isIntact(newest) {
            if Spool.isSpoolFile(gzPath) { Spool.discard(gzPath) }
            if !dryRun {
                removeReplaced(metric, replaces, by: newest, diagnostics: diagnostics)
                rememberOrWarn(metric, stat, newest, diagnostics: diagnostics)
            }
            return .done(newest.recordFields + ["unchanged"], "unchanged")
        }
        if let newest, newest.hash == hash {
            let why = bad[newest.key] != nil ? "was found damaged" : "is a delta whose chain is not whole in the store"
            diagnostics?.warn("\(Diagnostics.shown(metric)): \(newest.key) \(why); storing this content again")
        }
        let st: Glibc.stat
        do { st = try system_stat(gzPath) } catch { throw RecordError("spool file \(gzPath): \(error)") }
        // A cheap check that the file is what wsp-snap wrote for this record (a gzip whose
        // trailer holds SIZE, or a delta whose header names this content and base): a record
        // that names another file stores nothing.
        if let base {
            try checkDeltaHeader(gzPath, hash: hash, size: record[3].flatMap { Int($0) }, base: base)
        } else if let size = record[3].flatMap({ Int64($0) }), Gzip.trailerSize(ofFile: gzPath) != UInt32(truncatingIfNeeded: size) {
            throw RecordError("spool file \(gzPath): not the gzip of \(size) bytes that the record describes")
        }
        // A version's time is when it was read. Only one taken in the same second as the newest
        // before it is stored a second later, so "newest" never depends on how two hashes sort.
        let t = newest.map { $0.time >= time ? $0.time + 1 : time } ?? time
        if let base {
            // A delta needs its base, sound, in the store, and stamped before it.
            guard let b = objects.version(base), objects.isIntact(b), base.time < t else {
                if !dryRun { try? state?.forget(metric) }   // a state not written: its check finds the base gone
                throw RecordError("base version \(Timestamp.format(base.time)).\(base.hash.prefix(12))… is not in the store (or is damaged); the next run stores a full version")
            }
        }
        var v = StoredVersion(metric: metric, time: t, hash: hash, key: layout.key(metric: metric, time: t, hash: hash), base: base)
        v.key = layout.key(of: v)
        v.size = Int64(st.st_size)
        // A name too long for the store: its whole name goes first, beside its versions (StoreLayout).
        if !dryRun, layout.isLong(metric) { try store.put(layout.fullNameKey(metric), body: .bytes(Array(metric.utf8))) }
        return .upload(Upload(record: record, version: v, gzPath: gzPath, stat: stat, replaces: replaces))
    }
}

extension Push {
    /// This store's marker id: from the state's claim, else read once from the store.
    func storeId() throws -> String? {
        if let state, let o = state.owner() { return o.id }
        return try StoreMarker.read(store, layout)
    }

    /// Records in the state that `version` holds the file; a state that cannot be written
    /// (a full disk) costs a re-read of the file next run, and does not fail the record,
    /// whose content is in the store.
    func rememberOrWarn(_ metric: String, _ stat: FileStat?, _ version: StoredVersion, diagnostics: Diagnostics?) {
        rememberOrWarn([(metric, stat, version)], diagnostics: diagnostics)
    }

    /// `rememberOrWarn` for a batch's stored files: the lines of one journal in one append.
    func rememberOrWarn(_ items: [(metric: String, stat: FileStat?, version: StoredVersion)], diagnostics: Diagnostics?) {
        guard let state, !items.isEmpty else { return }
        let errors = state.record(items.map { ($0.metric, Push.entry($0.stat, $0.version)) })
        for (item, error) in zip(items, errors) {
            if let error {
                diagnostics?.warn("\(Diagnostics.shown(item.metric)): stored, but the state could not be updated (\(error)); the next run reads this file again")
            }
        }
    }

    /// Removes damaged versions once `good` holds their content, then the bad records of
    /// those removed (a version that stays keeps its record).
    func removeReplaced(_ metric: String, _ damaged: [(version: String, bad: String)], by good: StoredVersion, diagnostics: Diagnostics?) {
        guard !damaged.isEmpty else { return }
        do {
            let failed = try store.delete(damaged.map(\.version))
            for f in failed { diagnostics?.warn("\(Diagnostics.shown(metric)): could not remove damaged \(f.key) (\(f.error)); the next backup tries again") }
            let removed = damaged.filter { d in !failed.contains { $0.key == d.version } }
            if !removed.isEmpty {
                diagnostics?.warn("\(Diagnostics.shown(metric)): removed damaged \(removed.map { Path.lastComponent($0.version) }.joined(separator: ", ")); \(Path.lastComponent(good.key)) holds its content")
                _ = try store.delete(removed.map(\.bad))   // a record left behind marks nothing
            }
        } catch {
            diagnostics?.warn("\(Diagnostics.shown(metric)): could not remove damaged versions (\(error)); the next backup tries again")
        }
    }

    /// Downloads `version` beside `scratch` and checks it as a restore would; the reason it
    /// is damaged, or nil. A download that fails is an error (nothing is known). A delta
    /// version is rebuilt from its chain (the metric listed again): a chain broken anywhere
    /// makes it damaged too, since no restore can produce it. Unlike verify (see PullVerify),
    /// the mark that follows is at once made good by this upload of the same content.
    func damage(_ version: StoredVersion, scratch: String) throws -> String? {
        if version.isDelta {
            let listing = try StoreListing.metric(version.metric, in: store, layout: layout)
            do {
                _ = try VersionChain.materialize(version, objects: listing, store: store, layout: layout,
                                                 scratch: Path.directory(of: scratch))
                return nil
            } catch let e as ChainError {
                return e.description
            }
        }
        let tmp = AtomicFile.tempPath(for: scratch)
        TempFiles.register(tmp)
        defer { _ = try? system_unlink(tmp); TempFiles.unregister(tmp) }
        try store.get(version.key, to: tmp)
        do {
            _ = try VersionCheck.verify(gzPath: tmp, expectedHash: version.hash)
            return nil
        } catch let e as RecordError {
            return e.reason
        }
    }

    /// Checks that the spool file `gzPath` starts like the delta a record describes: content
    /// `hash` of `size` bytes, made against `base`.
    func checkDeltaHeader(_ gzPath: String, hash: String, size: Int?, base: VersionRef) throws {
        guard let size, size >= 0 else { throw RecordError("snapshot record of a delta needs SIZE (field 4)") }
        // The fixed header and the page index of a delta that holds every page.
        let headerBytes = PageDelta.Header.fixedBytes + 4 * ((size + PageDelta.pageSize - 1) / PageDelta.pageSize)
        let head: [UInt8]
        do { head = try Gzip.head(ofFile: gzPath, count: headerBytes) } catch {
            throw RecordError("spool file \(gzPath): not the delta the record describes (\(error))")
        }
        let header: PageDelta.Header
        do {
            header = try head.withUnsafeBytes { try PageDelta.Header.parse($0) }
        } catch {
            throw RecordError("spool file \(gzPath): not the delta the record describes (\(error))")
        }
        guard Hex.encode(header.newHash) == hash, Hex.encode(header.baseHash) == base.hash, header.newSize == size else {
            throw RecordError("spool file \(gzPath): not the delta of \(hash.prefix(12))… against \(base.hash.prefix(12))… that the record describes")
        }
    }

    /// The state's entry saying that `version` holds the file as `stat` saw it.
    static func entry(_ stat: FileStat?, _ version: StoredVersion) -> StateEntry {
        // A stat not to be trusted (a file written in the 2 s before its read): an entry whose
        // stat matches no file (size -1), so the file is read again, but its version can be
        // the base of the next one's delta.
        let s = stat ?? (inode: 0, device: 0, mtimeNs: 0, ctimeNs: 0, size: -1)
        return StateEntry(size: s.size, inode: s.inode, device: s.device, mtimeNs: s.mtimeNs, ctimeNs: s.ctimeNs,
                          hash: version.hash, time: version.time, storedSize: version.size, base: version.base?.description)
    }
}

#if canImport(Glibc)
import Glibc
#endif

/// Reading a metric's versions from a store.
public enum Versions {
    /// How far past a snapshot's time a stored version may be stamped and still count as the
    /// newest before it: room for same-second bumps of runs in quick succession and small
    /// clock steps; a version stamped further ahead was taken while the clock ran ahead (see
    /// README, "Clocks that ran ahead").
    public static let clockSlack: Int64 = 3600

    /// Every complete version of `metric`, oldest first (a legacy version counts once its
    /// `.sha1` is there).
    public static func all(of metric: String, in store: Store, layout: StoreLayout) throws -> [StoredVersion] {
        try StoreListing.metric(metric, in: store, layout: layout).versions
    }

    public static func newest(of metric: String, in store: Store, layout: StoreLayout) throws -> StoredVersion? {
        try all(of: metric, in: store, layout: layout).last
    }

    /// Version order: by time, then by key (two versions in one second).
    public static func isOlder(_ a: StoredVersion, _ b: StoredVersion) -> Bool {
        a.time != b.time ? a.time < b.time : a.key.utf8.lexicographicallyPrecedes(b.key.utf8)
    }
}
