/// Names, records and journal lines taken apart by their bytes. Swift compares and splits
/// strings by characters (grapheme clusters, canonically equivalent): a '.' or '/' followed by
/// a combining mark is no '.' or '/' to `split(separator:)`, `hasSuffix(".wsp")` is false for
/// `x\u{600}.wsp`, and `"é" == "e\u{301}"`. A file system and a store key are bytes: a metric
/// `a.\u{301}b` is the file `a/\u{301}b.wsp`, and a path is inside a root when its bytes
/// start with the root's. Splitting by bytes is also what records cost: walking characters
/// was most of an unchanged run's time in the tools that only pass records on.
extension StringProtocol {
    /// The parts between each `separator` byte (ASCII, so every part starts and ends on a
    /// scalar boundary); empty parts kept unless `omittingEmpty`.
    public func split(byte separator: UInt8, omittingEmpty: Bool = false) -> [Substring] {
        precondition(separator < 0x80, "split(byte:) takes an ASCII separator")
        let whole = Substring(self)
        let u = whole.utf8
        var offsets: [Int] = []
        let scanned: Void? = u.withContiguousStorageIfAvailable { bytes in
            for i in bytes.indices where bytes[i] == separator { offsets.append(i) }
        }
        if scanned == nil {
            var n = 0
            for b in u {
                if b == separator { offsets.append(n) }
                n += 1
            }
        }
        var parts: [Substring] = []
        parts.reserveCapacity(offsets.count + 1)
        var start = u.startIndex
        for o in offsets {
            let at = u.index(u.startIndex, offsetBy: o)
            if !(omittingEmpty && at == start) { parts.append(whole[start..<at]) }
            start = u.index(after: at)
        }
        if !(omittingEmpty && start == u.endIndex) { parts.append(whole[start...]) }
        return parts
    }

    /// Whether the bytes of `self` begin with those of `prefix`.
    public func hasPrefix(bytes prefix: some StringProtocol) -> Bool { utf8.starts(with: prefix.utf8) }

    /// Whether the bytes of `self` end with those of `suffix`.
    public func hasSuffix(bytes suffix: some StringProtocol) -> Bool {
        let n = suffix.utf8.count
        return utf8.count >= n && utf8.suffix(n).elementsEqual(suffix.utf8)
    }

    /// Whether the bytes of `self` hold `byte`.
    public func contains(byte: UInt8) -> Bool { utf8.contains(byte) }

    /// Whether `self` and `other` are the same bytes (not merely canonically equivalent).
    public func sameBytes(_ other: some StringProtocol) -> Bool { utf8.elementsEqual(other.utf8) }

    /// `self` without its first `n` bytes (`n` bytes of ASCII, or of a prefix: a scalar boundary).
    public func droppingFirst(bytes n: Int) -> Substring {
        let whole = Substring(self)
        return whole[whole.utf8.index(whole.utf8.startIndex, offsetBy: n)...]
    }

    /// `self` without its last `n` bytes (`n` bytes of ASCII: a scalar boundary).
    public func droppingLast(bytes n: Int) -> Substring {
        let whole = Substring(self)
        return whole[..<whole.utf8.index(whole.utf8.endIndex, offsetBy: -n)]
    }
}
