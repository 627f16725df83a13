#if canImport(Glibc)
import Glibc
#endif

/// `wsp-pull verify`: downloads versions and checks each as a restore would (gzip CRC and
/// length, the SHA-256 in its key or the legacy `.sha1`, the whisper header), restoring
/// nothing. Every checked version gets a record `METRIC TIME HASH KEY SIZE ok|bad`; each
/// bad one is also reported on stderr as `wsp-pull: METRIC: KEY: reason`, and the run fails.
/// A version whose content is damaged is marked bad in the store (`KEY.bad`), so that the
/// next backup replaces it.
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
            for v in all.sorted(by: Versions.isOlder) {
                if Signals.stopRequested || output.closed { return }
                listed += 1
                if sampled() {
                    checked += 1
                    check(v, incomplete: incomplete.contains(v.key), get: get, output: output, diagnostics: diagnostics)
                }
            }
        }
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
                    if sampled() {
                        checked += 1
                        check(v, get: get, output: output, diagnostics: diagnostics)
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
    func check(_ version: StoredVersion, incomplete: Bool = false, get: PullGet, output: RecordWriter, diagnostics: Diagnostics) {
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
        if problem == nil {
            do {
                let path = try get.fetch(v, size: v.size, diagnostics: diagnostics)
                defer { Spool.discard(path) }
                if v.size > 0, let st = try? system_stat(path), Int64(st.st_size) != v.size {
                    problem = "downloaded \(st.st_size) bytes, the listing said \(v.size)"
                } else {
                    do {
                        _ = try VersionCheck.verify(gzPath: path, expectedHash: v.hash)
                    } catch let e as RecordError {
                        problem = e.reason
                        damaged = true
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
