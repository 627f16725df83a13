/// Records per stage process (`xargs -n K`). xargs holds K records before it starts a
/// process, so the spool must hold K of the largest files or the pipeline could stall:
/// K comes from the bound (gzip output of whisper data is never more than 1% larger than its
/// input, plus headers). Within that, as many records per process as gives each of the P
/// processes about four batches, between 200 and 4000, but never so many that a process
/// goes without: against a store a round trip away, a run is as fast as the requests it
/// keeps in flight, one per process. The batches are then evened out to a multiple of P
/// batches: the last ones run side by side, not one alone while the other cores idle (the
/// 25th batch of 4000 records of a 100,000-file first backup ran alone for 2.4 s).
public enum BatchSize {
    /// K, or nil when the spool cannot hold two of the largest files.
    public static func records(spoolMax: Int64, largest: Int64, count: Int, processes: Int) -> Int? {
        let largest = max(largest, 1)
        let each = (count + processes - 1) / max(processes, 1)
        let cap = max(min(max(count / (4 * processes), 200), 4000, each), 1)
        let k = min(spoolMax / (largest + largest / 100 + 4096) - 1, Int64(cap))
        guard k >= 1 else { return nil }
        return evened(Int(k), count: count, processes: processes)
    }

    /// At most `k` records per batch, in a multiple of `processes` batches of about one size.
    static func evened(_ k: Int, count: Int, processes: Int) -> Int {
        let p = max(processes, 1)
        let batches = ((count + k - 1) / k + p - 1) / p * p
        return max(1, min(k, (count + batches - 1) / max(batches, 1)))
    }
}
