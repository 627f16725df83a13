/// Long runs of zero bytes in a buffer. Whisper preallocates every archive, so the files of
/// young or sparse metrics are mostly zeros; the compressor encodes such runs directly and a
/// restore leaves them to fallocate(2) instead of writing them.
public enum ZeroRuns {
    /// Granularity of the scan: runs start and end on multiples of this many bytes from the
    /// start of the buffer (zeros around them are left to the neighbouring data).
    static let chunk = 64

    /// The runs of zero bytes of at least `minimum` bytes in `buffer`, in order.
    public static func find(in buffer: UnsafeRawBufferPointer, minimum: Int) -> [Range<Int>] {
        var runs: [Range<Int>] = []
        guard let base = buffer.baseAddress, buffer.count >= minimum else { return runs }
        let chunks = buffer.count / chunk
        var runStart = -1
        var i = 0
        while i < chunks {
            let p = base + i &* chunk
            var acc: UInt64 = 0
            var w = 0
            while w < chunk {
                acc |= p.loadUnaligned(fromByteOffset: w, as: UInt64.self)
                w &+= 8
            }
            if acc == 0 {
                if runStart < 0 { runStart = i }
            } else if runStart >= 0 {
                if (i - runStart) * chunk >= minimum { runs.append(runStart * chunk ..< i * chunk) }
                runStart = -1
            }
            i &+= 1
        }
        if runStart >= 0, (chunks - runStart) * chunk >= minimum { runs.append(runStart * chunk ..< chunks * chunk) }
        return runs
    }
}
