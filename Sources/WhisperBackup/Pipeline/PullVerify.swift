#if canImport(Glibc)
import Glibc
#endif

/// `wsp-pull verify`: downloads versions and checks each as a restore would (gzip CRC and
/// length, the SHA-256 in its key or the legacy `.sha1`, the whisper header), restoring
/// nothing. Every checked version gets a record `METRIC TIME HASH KEY SIZE ok|bad`; each
/// bad one is also reported on stderr as `wsp-pull: METRIC: KEY: reason`, and the run fails.
/// A version whose content is damaged is marked bad in the store (`KEY.bad`), so that the
/// next backup replaces it.
///
/// Delta versions are checked along their chains (`VersionChain`): each is rebuilt and its
/// SHA-256 checked, starting from the version checked before it, so a chain checked oldest
/// first costs one download per object. Every version that depends on a broken link is
/// reported bad, with the link.
///
/// The rule for marks: only a version whose own object is damaged is marked bad (a full
/// version that does not unpack or hash right, a delta that does not unpack, or that does
/// not produce its key's SHA-256 from a base that checked out). A version that is sound
/// itself but whose base is missing, marked bad or damaged is reported, never marked. A mark
/// is leave for a backup to delete the object: the next backup of the same content stores it
/// again and removes the marked one (Push `removeReplaced`). Marking a sound delta for its
/// base's sake would have a backup delete an object that becomes restorable again as soon as
/// the base is put back (from another copy of the store), and would mark every later delta of
/// the chain for one break. The break itself is marked where it is (a damaged base); a
/// missing base has nothing to mark.
/// With `samplePercent` below 100, each version is checked with that probability.
public struct PullVerify {
    public var store: Store
    public var layout: StoreLayout
    public var spool: Spool
    public var before: Int64?
    public var samplePercent: Double

    public init(store: Store, layout: StoreLayout, spool: Spool, before: Int64?, samplePercent: Double) {
        self.store = store
        self.layout = layout
        self.spool = spool
        self.before = before
        self.samplePercent = samplePercent
    }

    /// Checks every version of the metrics that match `globs`, of the metrics named by
    /// `input` records, or, for input records that carry a KEY (`wsp-pull list` output),
    /// exactly those versions.
    public func run(globs: [MetricGlob], input: RecordInput?, output: RecordWriter, diagnostics: Diagnostics) throws {
        let list = PullList(store: store, layout: layout, before: before, all: true)
        let get = PullGet(store: store, layout: layout, spool: spool)
        var listed = 0, checked = 0
        func visit(_ objects: MetricObjects, _ chosen: [StoredVersion]) {
            let incomplete = Set(objects.incomplete.map(\.key))
            let all = chosen + objects.incomplete.filter { before == nil || $0.time <= before! }
            let chain = VersionChain(objects: objects, store: store, layout: layout, scratch: spool.dir)
            for v in all.sorted(by: Versions.isOlder) {
                if Signals.stopRequested || output.closed { return }
                listed += 1
                if sampled() {
                    checked += 1
                    check(v, incomplete: incomplete.contains(v.key), get: get, chain: chain, output: output, diagnostics: diagnostics)
                }
            }
        }
        // Version records: the chain of the last metric read, listed at its first delta.
        var chain: VersionChain? = nil
        if let input {
            // Metric names (every version of each), or version records with their KEY.
            for record in input.records(until: output) {
                guard record[3] != nil else {
                    try list.forEachSelected(globs: [], input: RecordInput(arguments: [record.line]), diagnostics: diagnostics,
                                             includeIncomplete: true, stop: { output.closed }, visit)
                    continue
                }
                do {
                    var v = try PullGet.version(from: record, layout: layout)
                    v.size = Int64(record[4] ?? "") ?? 0
                    listed += 1
                    if chain?.objects.metric != v.metric {
                        chain = nil
                        if v.isDelta {
                            let objects = try StoreListing.metric(v.metric, in: store, layout: layout)
                            chain = VersionChain(objects: objects, store: store, layout: layout, scratch: spool.dir)
                        }
                    }
                    if sampled() {
                        checked += 1
                        check(v, get: get, chain: chain, output: output, diagnostics: diagnostics)
                    }
                } catch {
                    diagnostics.fail(record.metric, error)
                }
            }
        } else {
            try list.forEachSelected(globs: globs, input: nil, diagnostics: diagnostics,
                                     includeIncomplete: true, stop: { output.closed }, visit)
        }
        if samplePercent < 100 {
            diagnostics.warn("checked \(checked) of \(listed) version(s) (\(samplePercent)%)")
        }
        try diagnostics.finish()
    }

    /// Records in the store that `version` is damaged (`KEY.bad`), so that the next backup
    /// of its content stores it again instead of deduplicating against it. Returns what
    /// the version's one line on stderr adds.
    func markBad(_ version: StoredVersion) -> String {
        do {
            try store.put(layout.badKey(version.key), body: .bytes([]))
            return "marked bad: the next backup of this file stores it again"
        } catch {
            return "could not mark it bad (\(error)): a backup with --full replaces it"
        }
    }

    func sampled() -> Bool {
        samplePercent >= 100 || Double.random(in: 0..<100) < samplePercent
    }

    /// Downloads and checks one version, and writes its record. A legacy version's hash is
    /// read from its `.sha1` unless the record gave it.
    func check(_ version: StoredVersion, incomplete: Bool = false, get: PullGet, chain: VersionChain?,
               output: RecordWriter, diagnostics: Diagnostics) {
        var v = version
        var problem: String? = nil
        var damaged = false
        if incomplete {
            problem = "no \(StoreLayout.legacyHashSuffix) beside it (an interrupted upload of the Python tool): cannot be verified"
        } else if v.legacy && v.hash.isEmpty {
            do {
                v.hash = try LegacyLayout.hash(of: v, in: store, layout: layout)
            } catch {
                problem = "\(layout.legacyHashKey(v.key)): \(error)"
            }
        }
        if problem == nil, v.isDelta, let chain {
            // Rebuilt from the version checked before it where the chain allows.
            let before = chain.bytesIn
            do {
                _ = try chain.rebuild(v)
            } catch let e as ChainError {
                problem = e.description
                damaged = e.kind == .damaged && e.dependent == nil   // its own object; see the rule above
            } catch is Interrupted {
                return
            } catch {
                problem = "download failed: \(error)"
            }
            diagnostics.bytesIn += chain.bytesIn - before
        } else if problem == nil {
            do {
                let path = try get.fetch(v, size: v.size, diagnostics: diagnostics)
                defer { Spool.discard(path) }
                if v.size > 0, let st = try? system_stat(path), Int64(st.st_size) != v.size {
                    problem = "downloaded \(st.st_size) bytes, the listing said \(v.size)"
                } else {
                    do {
                        let content = try VersionCheck.verify(gzPath: path, expectedHash: v.hash).bytes
                        chain?.remember(v, content: content)
                    } catch let e as RecordError {
                        problem = e.reason
                        damaged = true
                        chain?.remember(v, damaged: e.reason)
                    }
                }
            } catch let e as RecordError {
                problem = e.reason
            } catch is Interrupted {
                return   // stopped while waiting for spool room: not checked, no verdict
            } catch {
                problem = "download failed: \(error)"
            }
        }
        if let problem {
            let marked = damaged ? "; " + markBad(v) : ""
            diagnostics.fail(v.metric, "\(v.key): \(problem)\(marked)")
            output.write(Record(v.recordFields + ["bad"]))
        } else {
            output.write(Record(v.recordFields + ["ok"]))
            diagnostics.done("ok")
        }
    }
}
