#if canImport(Glibc)
import Glibc
#endif
import CDeflate
import CDeflateBlocks
import CZlib

/// Why a gzip stream could not be read.
public struct GzipError: Error, CustomStringConvertible {
    public var reason: String
    public var description: String { reason }
}

/// gzip (RFC 1952). Writing uses libdeflate (whole buffer, about 4x zlib's speed at the
/// same ratio); reading uses zlib's streaming inflate, which also takes multi-member files
/// such as the original tool's objects. These are the only uses of either library.
public enum Gzip {
    /// A libdeflate compressor kept for a process's whole run (its tables are allocated once).
    ///
    /// libdeflate spends about 1.6 ns a byte even on zeros, and whisper files are often mostly
    /// zeros (every archive is preallocated). So runs of zeros of at least `zeroRunMinimum`
    /// bytes are encoded here directly, as one dynamic-Huffman block of (258, distance 1)
    /// matches: 2 bits per 258 bytes, what libdeflate itself emits for them. The data between
    /// runs goes through libdeflate, whose final block is spliced in: its BFINAL bit cleared
    /// and an empty stored block appended to return to a byte boundary (as zlib's sync flush
    /// does). The result is still one standard gzip member.
    public final class Compressor {
        let handle: OpaquePointer
        let level: Int32
        let workspace: UnsafeMutableRawPointer
        public static let zeroRunMinimum = 64 * 1024

        public init(level: Int32) {
            handle = libdeflate_alloc_compressor(level)!
            self.level = level
            workspace = .allocate(byteCount: deflate_blocks_workspace_size(), alignment: 16)
        }
        deinit {
            libdeflate_free_compressor(handle)
            workspace.deallocate()
        }

        /// Compresses `input` into one standard gzip member in `output` (replacing its contents).
        public func compress(_ input: UnsafeRawBufferPointer, into output: ByteBuffer) {
            let runs = ZeroRuns.find(in: input, minimum: Self.zeroRunMinimum)
            if runs.isEmpty || !compressSpliced(input, runs: runs, into: output) {
                compressWhole(input, into: output)
            }
        }

        func compressWhole(_ input: UnsafeRawBufferPointer, into output: ByteBuffer) {
            output.reserve(libdeflate_gzip_compress_bound(handle, input.count))
            let n = libdeflate_gzip_compress(handle, input.baseAddress, input.count, output.storage.baseAddress, output.storage.count)
            precondition(n > 0, "libdeflate bound was too small")
            output.count = n
        }

        /// False when libdeflate's output could not be walked (then the caller compresses the
        /// whole buffer the ordinary way).
        func compressSpliced(_ input: UnsafeRawBufferPointer, runs: [Range<Int>], into output: ByteBuffer) -> Bool {
            // Every data segment's bound, its realignment and every zero block's header fit in
            // this; a zero block's body is 2 bits per 258 bytes.
            let segments = 2 * runs.count + 1
            output.reserve(libdeflate_deflate_compress_bound(handle, input.count)
                           + segments * (libdeflate_deflate_compress_bound(handle, 0) + 64) + input.count / 1024 + 64)
            var w = BitWriter(output.storage)
            let xfl: UInt8 = level < 2 ? 4 : level >= 8 ? 2 : 0
            w.appendBytes([0x1f, 0x8b, 8, 0, 0, 0, 0, 0, xfl, 0xff])
            var at = 0
            for run in runs {
                // The run encodes as a literal and whole 258-byte matches; its last few zeros
                // join the data that follows.
                let length = 1 + (run.count - 1) / 258 * 258
                if run.lowerBound > at, !appendData(UnsafeRawBufferPointer(rebasing: input[at..<run.lowerBound]), &w) { return false }
                w.appendZeroBlock(matches: (length - 1) / 258)
                at = run.lowerBound + length
            }
            if input.count > at, !appendData(UnsafeRawBufferPointer(rebasing: input[at...]), &w) { return false }
            // The final block: empty, fixed Huffman (BFINAL 1, BTYPE 01, end-of-block 0000000).
            w.appendBits(0b011, 3)
            w.appendBits(0, 7)
            w.alignToByte()
            let crc = libdeflate_crc32(0, input.baseAddress, input.count)
            w.appendLittleEndian(crc)
            w.appendLittleEndian(UInt32(truncatingIfNeeded: input.count))
            output.count = w.byteCount
            return true
        }

        /// Appends a libdeflate raw stream of `data` with its final block made non-final,
        /// followed by an empty stored block, so the writer is byte-aligned again.
        private func appendData(_ data: UnsafeRawBufferPointer, _ w: inout BitWriter) -> Bool {
            precondition(w.isAligned)
            let start = w.byteCount
            let out = w.storage.baseAddress! + start
            let n = libdeflate_deflate_compress(handle, data.baseAddress, data.count, out, w.storage.count - start)
            precondition(n > 0, "libdeflate bound was too small")
            var header = 0, end = 0
            guard deflate_find_final_block(workspace, out.assumingMemoryBound(to: UInt8.self), n, &header, &end) == 0 else { return false }
            out.storeBytes(of: out.load(fromByteOffset: header / 8, as: UInt8.self) & ~(1 << UInt8(header % 8)),
                           toByteOffset: header / 8, as: UInt8.self)
            // Continue writing at bit `end`: keep the whole bytes, re-append the partial one.
            w.byteCount = start + end / 8
            if end % 8 != 0 {
                let partial = out.load(fromByteOffset: end / 8, as: UInt8.self) & UInt8((1 << (end % 8)) - 1)
                w.appendBits(UInt64(partial), end % 8)
            }
            w.appendEmptyStoredBlock()
            return true
        }
    }

    /// Compresses `input` into one standard gzip member (a one-off; a process compressing
    /// many buffers keeps a `Compressor`).
    public static func compress(_ input: [UInt8], level: Int32 = 5) -> [UInt8] {
        let out = ByteBuffer(capacity: 0)
        input.withUnsafeBytes { Compressor(level: level).compress($0, into: out) }
        return Array(out.bytes)
    }

    /// Decompresses every member of a gzip stream read by `read` (which fills the buffer and
    /// returns the count, 0 at end), handing output to `write`. Fails on a bad header, a
    /// CRC or length mismatch, or a truncated stream.
    public static func decompress(read: (UnsafeMutableRawBufferPointer) throws -> Int,
                                  write: (UnsafeRawBufferPointer) throws -> Void) throws {
        var strm = z_stream()
        guard CZlib_inflateInit2(&strm, 15 + 16) == Z_OK else { throw GzipError(reason: "zlib init failed") }
        defer { inflateEnd(&strm) }
        let inCap = 256 * 1024, outCap = 1024 * 1024
        let inBuf = UnsafeMutableRawBufferPointer.allocate(byteCount: inCap, alignment: 8)
        let outBuf = UnsafeMutableRawBufferPointer.allocate(byteCount: outCap, alignment: 8)
        defer { inBuf.deallocate(); outBuf.deallocate() }
        var sawAny = false
        var inMember = false
        var atEOF = false
        while true {
            if strm.avail_in == 0 && !atEOF {
                let n = try read(inBuf)
                if n == 0 { atEOF = true } else {
                    strm.next_in = inBuf.baseAddress!.assumingMemoryBound(to: Bytef.self)
                    strm.avail_in = uInt(n)
                    sawAny = true
                }
            }
            if strm.avail_in == 0 && atEOF {
                if inMember { throw GzipError(reason: "gzip stream truncated") }
                if !sawAny { throw GzipError(reason: "empty gzip stream") }
                return
            }
            inMember = true
            strm.next_out = outBuf.baseAddress!.assumingMemoryBound(to: Bytef.self)
            strm.avail_out = uInt(outCap)
            let rc = inflate(&strm, Z_NO_FLUSH)
            let produced = outCap - Int(strm.avail_out)
            if produced > 0 { try write(UnsafeRawBufferPointer(rebasing: outBuf[0..<produced])) }
            switch rc {
            case Z_STREAM_END:
                inMember = false
                // Another member may follow (concatenated gzip); trailing garbage is an error.
                guard inflateReset(&strm) == Z_OK else { throw GzipError(reason: "zlib reset failed") }
            case Z_OK, Z_BUF_ERROR:
                if rc == Z_BUF_ERROR && strm.avail_in == 0 && atEOF { throw GzipError(reason: "gzip stream truncated") }
            case Z_DATA_ERROR:
                let msg = strm.msg.map { String(cString: $0) } ?? "data error"
                throw GzipError(reason: "gzip data corrupt (\(msg))")
            default:
                throw GzipError(reason: "gzip inflate failed (\(rc))")
            }
        }
    }

    /// Decompresses the gzip file at `path` into memory. A single member whose trailer
    /// states its size (what this project writes) goes through libdeflate in one call, about
    /// 3x zlib's speed; anything else (several members, legacy objects) streams through zlib.
    /// Both check every member's CRC-32 and length.
    public static func decompressFile(_ path: String) throws -> [UInt8] {
        let fd = try FileDescriptor.open(path, O_RDONLY)
        if let whole = try fd.closeAfter({ () -> [UInt8]? in
            let compressed = try fd.readAll()
            return try decompressSingleMember(compressed)
        }) {
            return whole
        }
        // Only here is the file opened again, for its size hint: a restore reads each once.
        return try decompressStreaming(path, sizeHint: sizeHint(ofFile: path))
    }

    /// One gzip member with libdeflate, or nil when the input is not exactly one member whose
    /// ISIZE fits (the caller then streams it through zlib, which also reports what is wrong).
    static func decompressSingleMember(_ input: [UInt8]) throws -> [UInt8]? {
        guard input.count >= 18 else { return nil }
        let n = input.count
        let isize = Int(input[n - 4]) | Int(input[n - 3]) << 8 | Int(input[n - 2]) << 16 | Int(input[n - 1]) << 24
        guard isize <= 1 << 31 else { return nil }
        let d = libdeflate_alloc_decompressor()!
        defer { libdeflate_free_decompressor(d) }
        var out = [UInt8](repeating: 0, count: max(isize, 1))
        var inUsed = 0, outUsed = 0
        let rc = input.withUnsafeBytes { i in
            out.withUnsafeMutableBytes { o in
                libdeflate_gzip_decompress_ex(d, i.baseAddress, i.count, o.baseAddress, o.count, &inUsed, &outUsed)
            }
        }
        guard rc == LIBDEFLATE_SUCCESS, inUsed == n, outUsed == isize else { return nil }
        out.removeSubrange(outUsed...)
        return out
    }

    static func decompressStreaming(_ path: String, sizeHint: Int) throws -> [UInt8] {
        let fd = try FileDescriptor.open(path, O_RDONLY)
        return try fd.closeAfter {
            var out = [UInt8]()
            out.reserveCapacity(sizeHint)
            var offset: Int64 = 0
            try decompress(read: { buf in
                let n = try fd.read(into: buf, at: offset)
                offset += Int64(n)
                return n
            }, write: { out.append(contentsOf: $0) })
            return out
        }
    }

    /// The first `count` bytes (fewer if the content is shorter) of the content of the gzip
    /// file at `path`, inflating no more than needed.
    public static func head(ofFile path: String, count: Int) throws -> [UInt8] {
        struct Enough: Error {}
        let fd = try FileDescriptor.open(path, O_RDONLY)
        return try fd.closeAfter {
            var out: [UInt8] = []
            var offset: Int64 = 0
            do {
                try decompress(read: { buf in
                    let n = try fd.read(into: UnsafeMutableRawBufferPointer(rebasing: buf[0..<min(buf.count, 4096)]), at: offset)
                    offset += Int64(n)
                    return n
                }, write: { chunk in
                    out.append(contentsOf: chunk.prefix(count - out.count))
                    if out.count >= count { throw Enough() }
                })
            } catch is Enough {}
            return out
        }
    }

    /// The ISIZE field of a file that starts like a gzip member (magic, deflate): the
    /// uncompressed size mod 2^32 of its last member; nil for anything else.
    public static func trailerSize(ofFile path: String) -> UInt32? {
        guard let fd = try? FileDescriptor.open(path, O_RDONLY | O_NONBLOCK) else { return nil }
        return fd.closeAfter {
            guard let st = try? fd.stat(), st.isRegularFile, st.st_size >= 18 else { return nil }
            var head = [UInt8](repeating: 0, count: 3), tail = [UInt8](repeating: 0, count: 4)
            guard (try? head.withUnsafeMutableBytes { try fd.read(into: $0, at: 0) }) == 3,
                  head == [0x1f, 0x8b, 8],
                  (try? tail.withUnsafeMutableBytes { try fd.read(into: $0, at: Int64(st.st_size) - 4) }) == 4 else { return nil }
            return UInt32(tail[0]) | UInt32(tail[1]) << 8 | UInt32(tail[2]) << 16 | UInt32(tail[3]) << 24
        }
    }

    /// The ISIZE field of the last member: the uncompressed size mod 2^32, a size hint.
    public static func sizeHint(ofFile path: String) -> Int {
        guard let fd = try? FileDescriptor.open(path, O_RDONLY) else { return 0 }
        return fd.closeAfter {
            guard let st = try? fd.stat(), st.st_size >= 18 else { return 0 }
            var b = [UInt8](repeating: 0, count: 4)
            let n = (try? b.withUnsafeMutableBytes { try fd.read(into: $0, at: Int64(st.st_size) - 4) }) ?? 0
            guard n == 4 else { return 0 }
            return Int(b[0]) | Int(b[1]) << 8 | Int(b[2]) << 16 | Int(b[3]) << 24
        }
    }
}
