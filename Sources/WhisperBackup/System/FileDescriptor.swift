#if canImport(Glibc)
import Glibc
#endif

/// An open file descriptor with the path it was opened from (for messages). Not closed
/// automatically: callers use `closeAfter`.
public struct FileDescriptor: Sendable {
    public let rawValue: CInt
    public let path: String

    public init(rawValue: CInt, path: String) {
        self.rawValue = rawValue
        self.path = path
    }

    public static func open(_ path: String, _ flags: CInt, mode: mode_t = 0o644) throws -> FileDescriptor {
        FileDescriptor(rawValue: try system_open(path, flags, mode), path: path)
    }

    public func close() { system_close(rawValue) }

    /// Runs `body`, then closes the descriptor whatever happened.
    public func closeAfter<R>(_ body: () throws -> R) rethrows -> R {
        defer { close() }
        return try body()
    }

    public func stat() throws -> Glibc.stat { try system_fstat(rawValue, path: path) }

    /// Cuts or extends the file to `length` bytes.
    public func truncate(to length: Int64) throws { try system_ftruncate(rawValue, length, path: path) }

    /// Replaces the file's content with `bytes` in place: written over the old content from
    /// offset 0, then cut to length. Unlike opening with O_TRUNC, the blocks the new content
    /// reuses are neither freed nor allocated again (on a filesystem mounted with `discard`,
    /// each free is a device request), and ext4 does not flush the file on close as it does a
    /// file truncated to zero and rewritten.
    public func overwrite(with bytes: UnsafeRawBufferPointer) throws {
        try write(bytes, at: 0)
        try truncate(to: Int64(bytes.count))
    }

    /// Reads `count` bytes at `offset`, looping on short reads; fewer only at end of file.
    public func read(into buffer: UnsafeMutableRawBufferPointer, at offset: Int64) throws -> Int {
        var done = 0
        while done < buffer.count {
            let n = try system_pread(rawValue, buffer.baseAddress! + done, buffer.count - done, offset + Int64(done), path: path)
            if n == 0 { break }
            done += n
        }
        return done
    }

    /// Reads the whole file from offset 0 until end of file. With the right `sizeHint` the
    /// bytes land in one allocation and one more small read confirms the end; without one,
    /// the file's size (plus one byte, so a single read also sees the end) is the hint.
    public func readAll(sizeHint: Int = 0) throws -> [UInt8] {
        let hint = sizeHint > 0 ? sizeHint : Int((try? stat().st_size) ?? 0) + 1
        var out = [UInt8](repeating: 0, count: hint)
        var filled = try out.withUnsafeMutableBytes { try read(into: $0, at: 0) }
        if filled < out.count {
            out.removeSubrange(filled...)
            return out
        }
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = try chunk.withUnsafeMutableBytes { try read(into: $0, at: Int64(filled)) }
            if n == 0 { break }
            out.append(contentsOf: chunk[0..<n])
            filled += n
        }
        return out
    }

    /// Calls `body` with the file's bytes from offset 0 to its end, a chunk of at most
    /// `chunkSize` bytes at a time, through one buffer (a digest or a copy of a large file).
    public func forEachChunk(chunkSize: Int = 1 << 20, _ body: (UnsafeRawBufferPointer) throws -> Void) throws {
        let buf = UnsafeMutableRawBufferPointer.allocate(byteCount: chunkSize, alignment: 8)
        defer { buf.deallocate() }
        var offset: Int64 = 0
        while true {
            let n = try read(into: buf, at: offset)
            if n == 0 { return }
            try body(UnsafeRawBufferPointer(rebasing: buf[0..<n]))
            offset += Int64(n)
        }
    }

    /// Writes all of `bytes` at `offset`, looping on short writes.
    public func write(_ bytes: UnsafeRawBufferPointer, at offset: Int64) throws {
        var done = 0
        while done < bytes.count {
            done += try system_pwrite(rawValue, bytes.baseAddress! + done, bytes.count - done, offset + Int64(done), path: path)
        }
    }

    /// Appends all of `text` (UTF-8) at the current position.
    public func writeAll(_ text: String) throws {
        try Array(text.utf8).withUnsafeBytes { try writeAll($0) }
    }

    /// Appends all of `bytes` at the current position, looping on short writes.
    public func writeAll(_ bytes: UnsafeRawBufferPointer) throws {
        var done = 0
        while done < bytes.count {
            done += try system_write(rawValue, bytes.baseAddress! + done, bytes.count - done, path: path)
        }
    }

    /// Fills this new, empty file with `bytes`. Its blocks are allocated first (fallocate(2),
    /// as carbon does for new whisper files, so the file is not sparse and later writes find
    /// their space), and then only the data outside long runs of zeros is written: allocated,
    /// unwritten blocks read as zeros. A preallocated whisper file is mostly such runs. Where
    /// the filesystem cannot allocate, every byte is written.
    public func writeAllocated(_ bytes: UnsafeRawBufferPointer) throws {
        let runs = ZeroRuns.find(in: bytes, minimum: 16 * 1024)
        guard !runs.isEmpty, try system_fallocate(rawValue, Int64(bytes.count), path: path) else {
            try writeAll(bytes)
            return
        }
        var at = 0
        for run in runs + [bytes.count..<bytes.count] {
            if run.lowerBound > at { try write(UnsafeRawBufferPointer(rebasing: bytes[at..<run.lowerBound]), at: Int64(at)) }
            at = run.upperBound
        }
    }

    public func sync() throws { try system_fsync(rawValue, path: path) }
}

extension stat {
    /// Change time in nanoseconds: moves on every write, even one that restores mtime.
    public var ctimeNanoseconds: Int64 { Int64(st_ctim.tv_sec) * 1_000_000_000 + Int64(st_ctim.tv_nsec) }
    public var mtimeNanoseconds: Int64 { Int64(st_mtim.tv_sec) * 1_000_000_000 + Int64(st_mtim.tv_nsec) }
    public var isRegularFile: Bool { (st_mode & S_IFMT) == S_IFREG }
    public var isDirectory: Bool { (st_mode & S_IFMT) == S_IFDIR }
    public var isSymlink: Bool { (st_mode & S_IFMT) == S_IFLNK }
}
