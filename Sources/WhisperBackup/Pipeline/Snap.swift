#if canImport(Glibc)
import Glibc
#endif

/// A consistent copy of one whisper file, in a buffer the caller reuses.
public struct Snapshot {
    public var bytes: UnsafeRawBufferPointer
    public var stat: Glibc.stat
    /// When the copy was read (seconds since the epoch).
    public var time: Int64
    /// The same, in nanoseconds, for comparing with file times.
    public var timeNs: Int64
}

/// `wsp-snap`: for each file record, a consistent snapshot (shared flock, same inode as the
/// path, re-read when a write raced the read), validated as whisper, hashed (SHA-256) and
/// gzipped into the bounded spool. Writes `METRIC TIME SHA256 SIZE GZFILE STAT [STORED STOREID]`:
/// STAT is the file's `ino:dev:mtime:ctime:size` for the state (or `-`), and a file the state
/// shows unchanged since its last push is not read: GZFILE is `-`, TIME and SHA256 name the
/// stored version, STORED its object size, STOREID the id of the store the state vouches for.
/// A changed file whose last version the state vouches for may be written as a delta against
/// it (`PageIndex`, `PageDelta`): GZFILE then holds the gzipped delta and field 9 BASE names
/// the version it applies to (`METRIC TIME SHA256 SIZE GZFILE STAT - - BASE`).
public struct Snap {
    public var spool: Spool
    public var root: String?
    public var lockTimeout: Double
    public var level: Int32
    /// Attempts at a read that no write raced before giving up.
    public var maxReads = 5
    /// The state of the store the snapshots go to, when it can be trusted: files whose stat
    /// matches what was pushed are not read at all.
    public var state: BackupState?
    /// The check of `state` made entry by entry (file://), reported when the run ends.
    public var byMetric: StateCheck.ByMetric?
    /// The page indexes of the state directory (`--state`, with `--full` too): nil for a
    /// dry run, which writes nothing.
    public var pageIndexes: PageIndexes?
    /// Versions per full version: a delta is made only while the chain from the last full
    /// version stays shorter (`--full-every`; 1 makes every version full).
    public var fullEvery = Snap.defaultFullEvery
    public static let defaultFullEvery = 10
    /// A file whose change time is this close to the read is not recorded in the state: a
    /// write in the same timestamp tick right after the read would leave its stat unchanged.
    public static let settleNs: Int64 = 2_000_000_000

    /// Working memory reused for every file: the copy and its gzip.
    let readBuffer = ByteBuffer()
    let gzBuffer = ByteBuffer()
    let compressor: Gzip.Compressor

    public init(spool: Spool, root: String?, lockTimeout: Double, level: Int32) {
        self.spool = spool
        self.root = root
        self.lockTimeout = lockTimeout
        self.level = level
        compressor = Gzip.Compressor(level: level)
    }

    public func run(input: RecordInput, output: RecordWriter, diagnostics: Diagnostics) throws {
        defer { output.flush() }   // the records held (RecordWriter.hold)
        diagnostics.expect(input)
        // The files ahead are read while this one is compressed (a file unchanged since its
        // last push is only stat'ed, so not read ahead either).
        let records = ReadAhead.records(input, until: output) { record in
            let target = Result { try self.target(record) }
            return (target, (try? target.get()).map { ReadAhead.Item(path: $0.path, unless: $0.vouched) })
        }
        for (record, target) in records {
            do {
                let fields = try snapOne(try target.get(), diagnostics: diagnostics)
                // A snapshot the next stage never hears of leaves no spool file behind; a
                // record of an unchanged file owns none, and is held for the next write.
                if fields[4] == "-" {
                    output.hold(Record(fields))
                } else if !output.write(Record(fields)) {
                    Spool.discard(fields[4])
                }
                diagnostics.done("snapped")
            } catch let e as SpoolFull where e.stopsTheStage {
                // Waiting again for each remaining record cannot help: stop here, once.
                diagnostics.fail(record.metric, e)
                break
            } catch {
                diagnostics.fail(record.metric, error)
            }
        }
        byMetric?.report(diagnostics)
        try diagnostics.finish()
    }

    /// What a record names: its metric, the file's path, and the state's entry for it.
    struct Target {
        var metric: String
        var path: String
        var vouched: StateEntry?
    }

    func target(_ record: Record) throws -> Target {
        let metric = record.metric
        try MetricName.validate(metric)
        let path: String
        if let p = record[1] {
            path = p
        } else if let root {
            path = Path.join(root, MetricName.relativePath(metric))
        } else {
            throw RecordError("record has no PATH field (and no --root to derive it)")
        }
        return Target(metric: metric, path: path, vouched: state?.lookup(metric))
    }

    func snapOne(_ target: Target, diagnostics: Diagnostics) throws -> [String] {
        let (metric, path, vouched) = (target.metric, target.path, target.vouched)
        if let state, let entry = vouched {
            let st: Glibc.stat
            do { st = try system_stat(path) } catch { throw RecordError("\(error)") }
            if entry.matches(st) {
                diagnostics.skipped += 1
                return [metric, Timestamp.format(entry.time), entry.hash, String(entry.size), "-", entry.statField,
                        String(entry.storedSize), state.owner()?.id ?? ""] + (entry.base.map { [$0] } ?? [])
            }
        }
        let snap = try Snap.read(path: path, lockTimeout: lockTimeout, maxReads: maxReads, into: readBuffer)
        _ = try WhisperHeader(snap.bytes, fileSize: snap.bytes.count)
        let rawHash = Digest.hash(.sha256, snap.bytes)
        let hash = Hex.encode(rawHash)
        // Page hashes only where an index is kept: a dry run pays nothing.
        let pages = pageIndexes == nil ? [] : PageDelta.pageHashes(snap.bytes)
        let delta = deltaBase(metric, vouched, pages: pages, size: snap.bytes.count)
        if let delta {
            let raw = PageDelta.encode(new: snap.bytes, baseSize: delta.index.fileSize, baseHash: delta.index.hash,
                                       newHash: rawHash, pages: delta.changed)
            raw.withUnsafeBytes { compressor.compress($0, into: gzBuffer) }
        } else {
            compressor.compress(snap.bytes, into: gzBuffer)
        }
        diagnostics.bytesIn += Int64(snap.bytes.count)
        diagnostics.bytesOut += Int64(gzBuffer.count)
        let dest = try spool.write(gzBuffer.bytes)
        if let pageIndexes, delta?.index.hash != rawHash {
            // The content unchanged (a file touched): the index already describes it. An index
            // not written (a full state disk, which wsp-push reports) names other content than
            // the state's entry: the next version is stored full, nothing worse.
            let index = PageIndex(pageSize: PageDelta.pageSize, depth: delta.map { $0.index.depth + 1 } ?? 0,
                                  fileSize: snap.bytes.count, hash: rawHash, pages: pages)
            try? pageIndexes.write(index, metric: metric)
        }
        let st = snap.stat
        let settled = snap.timeNs - max(st.mtimeNanoseconds, st.ctimeNanoseconds) >= Snap.settleNs
        let entry = StateEntry(size: Int64(st.st_size), inode: UInt64(st.st_ino), device: UInt64(st.st_dev),
                               mtimeNs: st.mtimeNanoseconds, ctimeNs: st.ctimeNanoseconds, hash: hash, time: 0, storedSize: 0)
        let fields = [metric, Timestamp.format(snap.time), hash, String(snap.bytes.count), dest, settled ? entry.statField : "-"]
        return delta.map { fields + ["-", "-", $0.base.description] } ?? fields
    }

    /// The version a snapshot of `metric` is stored as a delta against, with the base's page
    /// index and the pages that differ; nil to store it full. A delta needs the trusted
    /// state's entry for the metric (the version the store holds as its newest), a page index
    /// of that very content, a chain shorter than `fullEvery`, a name of at most
    /// `StoreLayout.maxDeltaMetricBytes`, and changed pages of at most `PageDelta.maxFraction`
    /// of the file.
    func deltaBase(_ metric: String, _ entry: StateEntry?, pages: [UInt64], size: Int)
        -> (base: VersionRef, index: PageIndex, changed: [Int])? {
        guard state != nil, let entry, let pageIndexes, metric.utf8.count <= StoreLayout.maxDeltaMetricBytes,
              let index = pageIndexes.read(metric: metric, hash: entry.hash), index.pageSize == PageDelta.pageSize,
              index.depth + 1 < fullEvery else { return nil }
        let changed = PageDelta.changedPages(old: index.pages, new: pages)
        guard Double(PageDelta.bytes(of: changed, fileSize: size)) <= PageDelta.maxFraction * Double(size) else { return nil }
        return (VersionRef(time: entry.time, hash: entry.hash), index, changed)
    }

    /// The state at `dir` if it can be trusted: it names a store whose marker is still the one
    /// the state was written against, and what it vouches for is confirmed by the store before
    /// it is used (entries it did not confirm are dropped): by this run's one listing pass, or
    /// on a file:// store entry by entry as the records come (`byMetric`, whose `report`
    /// says what it dropped). Otherwise nil (every file is read), with a note why.
    public static func trustedState(dir: String, diagnostics: Diagnostics) throws
        -> (state: BackupState, byMetric: StateCheck.ByMetric?)? {
        let state = try BackupState(dir: dir)
        guard let owner = state.owner() else { return nil }   // first run: nothing recorded yet
        let id: String?
        let store: Store, layout: StoreLayout
        do {
            (store, layout) = try StoreRegistry.open(owner.url, settings: owner.settings)
            id = try StoreMarker.read(store, layout)
        } catch {
            diagnostics.warn("state \(dir): cannot check \(owner.url) (\(error)); reading every file")
            return nil
        }
        guard id == owner.id else {
            diagnostics.warn("state \(dir): \(owner.url) is not the store this state was written for (emptied or replaced); reading every file")
            return nil
        }
        do {
            if !store.listsRanges {
                _ = try StateCheck.oncePerRun(state: state) {
                    StateCheck.removeStaleTempFiles(state)
                    return StateCheck.Result()
                }
                let byMetric = StateCheck.ByMetric(state: state, store: store, layout: layout)
                state.vouches = byMetric.vouches
                return (state, byMetric)
            }
            // What the state vouches for must be in the store: one listing pass per run.
            _ = try StateCheck.ensure(state: state, store: store, layout: layout, diagnostics: diagnostics)
        } catch let e as Interrupted {
            throw e
        } catch {
            diagnostics.warn("state \(dir): cannot compare it with \(owner.url) (\(error)); reading every file")
            return nil
        }
        return (state, nil)
    }

    /// Reads `path` consistently: open, `flock(LOCK_SH)` within `lockTimeout`, check the path
    /// still names the locked inode (whisper-resize replaces files by rename), read, and read
    /// again if size or change time moved meanwhile (carbon does not lock by default).
    public static func read(path: String, lockTimeout: Double, maxReads: Int, into buffer: ByteBuffer) throws -> Snapshot {
        for _ in 0..<maxReads {
            // O_NONBLOCK: a FIFO named like a whisper file must not block the open.
            let fd = try FileDescriptor.open(path, O_RDONLY | O_NONBLOCK)
            let result: Snapshot? = try fd.closeAfter {
                guard try fd.stat().isRegularFile else { throw RecordError("\(path): not a regular file") }
                try FileLock.lock(fd, .shared, timeout: lockTimeout)
                defer { FileLock.unlock(fd) }
                let before = try fd.stat()
                let now = try system_stat(path)
                if now.st_ino != before.st_ino || now.st_dev != before.st_dev { return nil }   // replaced: open again
                let readAt = system_now()
                // One byte more than the size, to see a file that grew meanwhile.
                buffer.reserve(Int(before.st_size) + 1)
                buffer.count = try fd.read(into: UnsafeMutableRawBufferPointer(rebasing: buffer.storage[0..<(Int(before.st_size) + 1)]), at: 0)
                let after = try fd.stat()
                if after.st_size != before.st_size || after.ctimeNanoseconds != before.ctimeNanoseconds
                    || buffer.count != Int(before.st_size) {
                    return nil   // a write raced the read
                }
                return Snapshot(bytes: buffer.bytes, stat: after, time: Int64(readAt), timeNs: Int64(readAt * 1e9))
            }
            if let result { return result }
        }
        throw RecordError("\(path): changed during every one of \(maxReads) reads")
    }
}
