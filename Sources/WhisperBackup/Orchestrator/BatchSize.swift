/// Records per stage process (`xargs -n K`). xargs holds K records before it starts a
/// process, so the spool must hold K of the largest files or the pipeline could stall:
/// K comes from the bound (gzip output of whisper data is never more than 1% larger than its
/// input, plus headers). Within that, as many records per process as gives each of the P
/// processes about four batches, between 200 and 4000, but never so many that a process
/// goes without: against a store a round trip away, a run is as fast as the requests it
/// keeps in flight, one per process.
public enum BatchSize {
    /// K, or nil when the spool cannot hold two of the largest files.
    public static func records(spoolMax: Int64, largest: Int64, count: Int, processes: Int) -> Int? {
        let largest = max(largest, 1)
        let each = (count + processes - 1) / max(processes, 1)
        let cap = max(min(max(count / (4 * processes), 200), 4000, each), 1)
        let k = min(spoolMax / (largest + largest / 100 + 4096) - 1, Int64(cap))
        return k >= 1 ? Int(k) : nil
    }
}
