/// Writes a DEFLATE bit stream (RFC 1951: LSB-first; Huffman codes most significant bit first)
/// into preallocated memory. Used for the blocks the compressor writes itself.
struct BitWriter {
    let storage: UnsafeMutableRawBufferPointer
    /// Whole bytes written.
    var byteCount = 0
    private var pending: UInt64 = 0
    private var pendingBits = 0

    init(_ storage: UnsafeMutableRawBufferPointer) { self.storage = storage }

    var isAligned: Bool { pendingBits == 0 }

    /// `count` (at most 32) bits of `value`, least significant first.
    mutating func appendBits(_ value: UInt64, _ count: Int) {
        pending |= value << UInt64(pendingBits)
        pendingBits += count
        while pendingBits >= 8 {
            storage[byteCount] = UInt8(truncatingIfNeeded: pending)
            byteCount += 1
            pending >>= 8
            pendingBits -= 8
        }
    }

    /// A Huffman code of `length` bits, most significant bit first.
    mutating func appendCode(_ code: UInt64, _ length: Int) {
        var reversed: UInt64 = 0
        for i in 0..<length { reversed |= ((code >> UInt64(i)) & 1) << UInt64(length - 1 - i) }
        appendBits(reversed, length)
    }

    mutating func appendZeroBits(_ count: Int) {
        var left = count
        while left > 0 && pendingBits != 0 { appendBits(0, 1); left -= 1 }
        let bytes = left / 8
        if bytes > 0 {
            UnsafeMutableRawBufferPointer(rebasing: storage[byteCount..<byteCount + bytes]).initializeMemory(as: UInt8.self, repeating: 0)
            byteCount += bytes
        }
        appendBits(0, left % 8)
    }

    mutating func alignToByte() {
        if pendingBits > 0 { appendBits(0, 8 - pendingBits) }
    }

    mutating func appendBytes(_ bytes: [UInt8]) {
        precondition(isAligned)
        for b in bytes { storage[byteCount] = b; byteCount += 1 }
    }

    mutating func appendLittleEndian(_ v: UInt32) {
        appendBytes([UInt8(truncatingIfNeeded: v), UInt8(truncatingIfNeeded: v >> 8),
                     UInt8(truncatingIfNeeded: v >> 16), UInt8(truncatingIfNeeded: v >> 24)])
    }

    /// A non-final stored block of no bytes: what zlib's sync flush writes to reach a byte
    /// boundary.
    mutating func appendEmptyStoredBlock() {
        appendBits(0, 3)
        alignToByte()
        appendBytes([0, 0, 0xff, 0xff])
    }

    /// A non-final block of 1 + 258 x `matches` zero bytes: a literal 0, then `matches` copies
    /// of length 258 at distance 1, followed by an empty stored block (byte-aligned again).
    /// Codes: length 258 (symbol 285) "0", literal 0 "10", end of block "11"; the only
    /// distance code (0, distance 1) "0" — so each match costs 2 bits.
    mutating func appendZeroBlock(matches: Int) {
        appendBits(0, 1)        // BFINAL
        appendBits(2, 2)        // BTYPE: dynamic Huffman
        appendBits(29, 5)       // HLIT: 286 literal/length codes
        appendBits(0, 5)        // HDIST: 1 distance code
        appendBits(14, 4)       // HCLEN: 18 code-length codes
        // Code-length code lengths in RFC order 16 17 18 0 8 7 9 6 10 5 11 4 12 3 13 2 14 1:
        // symbol 18 (a run of zeros) 1 bit, symbols 1 and 2 two bits each.
        for length in [0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 0, 2] { appendBits(UInt64(length), 3) }
        // Canonical code-length codes: 18 "0", 1 "10", 2 "11".
        appendCode(0b11, 2)                          // literal 0: length 2
        appendCode(0, 1); appendBits(138 - 11, 7)    // literals 1...138: unused
        appendCode(0, 1); appendBits(117 - 11, 7)    // literals 139...255: unused
        appendCode(0b11, 2)                          // end of block: length 2
        appendCode(0, 1); appendBits(28 - 11, 7)     // lengths 257...284: unused
        appendCode(0b10, 2)                          // length 258 (285): length 1
        appendCode(0b10, 2)                          // distance code 0: length 1
        appendCode(0b10, 2)                          // literal 0
        appendZeroBits(2 * matches)                  // (258, distance 1) as "0" "0"
        appendCode(0b11, 2)                          // end of block
        appendEmptyStoredBlock()
    }
}
