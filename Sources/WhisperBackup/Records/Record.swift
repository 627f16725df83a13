#if canImport(Glibc)
import Glibc
#endif
import Synchronization

/// One line of a pipeline: TAB-separated fields, the metric name first.
public struct Record: Sendable, Equatable {
    public var fields: [String]

    public init(_ fields: [String]) { self.fields = fields }

    public init(line: Substring) {
        fields = line.split(byte: UInt8(ascii: "\t")).map(String.init)
    }

    public var metric: String { fields.first ?? "" }

    /// The field at `index`, or nil when the record is shorter or the field is empty.
    public subscript(_ index: Int) -> String? {
        index < fields.count && !fields[index].isEmpty ? fields[index] : nil
    }

    public var line: String { fields.joined(separator: "\t") + "\n" }

    /// Longest directory whose paths records may carry: with a metric of MetricName.maxLength
    /// under it, a record stays under PIPE_BUF (longer ones would be cut: RecordWriter).
    public static let maxDirectoryLength = 1024

    /// Why the paths under `dir` (a whisper root, the spool, a file:// store read in place)
    /// cannot be fields of records, or nil when they can: a tab or a line break would split
    /// every record that holds one of them.
    public static func problem(withDirectory dir: String) -> String? {
        for b in dir.utf8 {
            switch b {
            case 9: return "a tab in the path would split the records that carry it"
            case 10, 13: return "a line break in the path would split the records that carry it"
            default: break
            }
        }
        if dir.utf8.count > maxDirectoryLength {
            return "path longer than \(maxDirectoryLength) bytes: the records that carry it could exceed PIPE_BUF"
        }
        return nil
    }
}

/// A record whose fields cannot be used, reported as `tool: METRIC: reason`.
public struct RecordError: Error, CustomStringConvertible {
    public var reason: String
    public init(_ reason: String) { self.reason = reason }
    public var description: String { reason }
}

/// Where a tool's records come from: its arguments when it has any (one argument = one
/// record, as `xargs` passes them), standard input otherwise. Streams: one line at a time.
public struct RecordInput: Sequence {
    let arguments: [String]

    public init(arguments: [String]) { self.arguments = arguments }

    /// How many records the input holds, when that is known without consuming it: the
    /// arguments, or the non-empty lines left in standard input when it is a regular file
    /// (`tool < records`); nil for a pipe or a terminal. For progress only.
    public var expectedCount: Int? {
        if !arguments.isEmpty { return arguments.filter { !$0.isEmpty && $0 != "\n" }.count }
        return LineReader.countLines(fd: 0)
    }

    /// One rule for every tool: a blank line (empty, or only spaces, tabs and CRs) is no
    /// record and is skipped.
    static func isBlank(_ line: Substring) -> Bool {
        line.utf8.allSatisfy { $0 == 32 || $0 == 9 || $0 == 13 }
    }

    /// Whether every record is already at hand (arguments), so a tool may take them in batches.
    public var isBuffered: Bool { !arguments.isEmpty }

    /// The records a step takes, one at a time, until a stop is requested or the reader of
    /// `output` went away: the loop of every step (what was not taken stays unprocessed).
    public func records(until output: RecordWriter) -> AnySequence<Record> {
        AnySequence { () -> AnyIterator<Record> in
            let records = self.makeIterator()
            return AnyIterator { Signals.stopRequested || output.closed ? nil : records.next() }
        }
    }

    public func makeIterator() -> AnyIterator<Record> {
        if !arguments.isEmpty {
            var it = arguments.makeIterator()
            return AnyIterator {
                while let a = it.next() {
                    let line = a.hasSuffix("\n") ? a.dropLast() : Substring(a)
                    if RecordInput.isBlank(line) { continue }
                    return Record(line: line)
                }
                return nil
            }
        }
        let reader = LineReader(fd: 0)
        // A tool about to wait for records has passed on every record it holds.
        reader.beforeRead = RecordWriter.flushAll
        return AnyIterator {
            while let line = reader.next() {
                if RecordInput.isBlank(Substring(line)) { continue }
                return Record(line: Substring(line))
            }
            return nil
        }
    }
}

/// Reads `\n`-terminated lines from a descriptor, stopping early when a stop was requested.
public final class LineReader {
    private let fd: CInt
    private var buffer: [UInt8] = []
    private var start = 0
    private var eof = false
    /// Called before each read(2), which may wait: the records held for the next stage go
    /// out first.
    var beforeRead: (() -> Void)?

    public init(fd: CInt) { self.fd = fd }

    /// The non-empty lines from the current offset of `fd` to its end, read with `pread` (the
    /// offset stays), when `fd` is a regular file; nil otherwise.
    public static func countLines(fd: CInt) -> Int? {
        guard let st = try? system_fstat(fd), st.isRegularFile, var offset = try? system_tell(fd) else { return nil }
        var chunk = [UInt8](repeating: 0, count: 1 << 20)
        var lines = 0
        var previous: UInt8 = 10
        while true {
            let n = chunk.withUnsafeMutableBytes { (try? system_pread(fd, $0.baseAddress!, $0.count, offset)) ?? 0 }
            if n <= 0 { break }
            for b in chunk[0..<n] {
                if b == 10 && previous != 10 { lines += 1 }
                previous = b
            }
            offset += Int64(n)
        }
        return previous == 10 ? lines : lines + 1
    }

    public func next() -> String? {
        while true {
            if let nl = buffer[start...].firstIndex(of: 10) {
                let line = String(decoding: buffer[start..<nl], as: UTF8.self)
                start = nl + 1
                return line
            }
            if eof || Signals.stopRequested {
                if start < buffer.count && !Signals.stopRequested {
                    let line = String(decoding: buffer[start...], as: UTF8.self)
                    start = buffer.count
                    return line
                }
                return nil
            }
            if start > 0 {
                buffer.removeSubrange(0..<start)
                start = 0
            }
            var chunk = [UInt8](repeating: 0, count: 65536)
            beforeRead?()
            do {
                let n = try chunk.withUnsafeMutableBytes { try system_read_once(fd, $0) }
                if n == 0 { eof = true } else { buffer.append(contentsOf: chunk[0..<n]) }
            } catch Errno.interrupted {
                continue
            } catch {
                eof = true
            }
        }
    }
}

/// Writes records to a descriptor, whole records per `write(2)`, so processes that share a
/// pipe under `xargs -P` never interleave (records stay under PIPE_BUF, 4096 bytes).
///
/// A record that owns nothing (no spool file the next stage must take) may be held
/// (`hold`) and written with the records after it, up to PIPE_BUF in one `write(2)`: an
/// unchanged run passes a record per file through three stages, and a write per record
/// (and a read and a wake-up of the reader per record) cost more than the records' work.
/// What is held is written before anything else is, with the next record held after 0.2 s,
/// before the tool waits (for its input, a lock, room in the spool, a retry, uploads), and
/// when it ends (`flushAll`, from `ToolMain`).
public final class RecordWriter: @unchecked Sendable {
    public let fd: CInt
    /// Set once the reader has gone away (EPIPE), or a SIGINT/SIGTERM interrupted a write
    /// blocked on a reader that does not read; the tool then stops quietly.
    public private(set) var closed = false
    private var held: [UInt8] = []
    var heldBytes: [UInt8] { held }
    /// When the oldest record held was: nothing is held longer than `holdSeconds`.
    private var heldSince = 0.0
    static let holdSeconds = 0.2

    private static let left = Atomic<Bool>(false)
    private static let writers = Mutex<[RecordWriter]>([])
    /// Whether a writer of this process met a reader that had gone away (EPIPE): the records
    /// after it were not processed, so the tool must not exit 0 (it exits 141, as a death by
    /// SIGPIPE would).
    public static var readerLeft: Bool { left.load(ordering: .relaxed) }

    public init(fd: CInt = 1) {
        self.fd = fd
        _ = RecordWriter.flushedBeforeWaits
        RecordWriter.writers.withLock { $0.append(self) }
    }

    private static let flushedBeforeWaits: Void = Waiting.register { RecordWriter.flushAll() }

    /// Writes what every writer of the process holds: before the tool exits.
    public static func flushAll() {
        for w in writers.withLock({ $0 }) { w.flush() }
    }

    /// Writes one record (after what is held); false when it could not be written (the
    /// reader is gone).
    @discardableResult
    public func write(_ record: Record) -> Bool {
        write(line: record.line)
    }

    @discardableResult
    public func write(_ fields: String...) -> Bool {
        write(Record(fields))
    }

    /// Holds a record that owns nothing, to be written with the ones after it; false when
    /// the reader is known to be gone.
    @discardableResult
    public func hold(_ record: Record) -> Bool {
        if closed { return false }
        let bytes = RecordWriter.bytes(record.line)
        if held.count + bytes.count > Int(PIPE_BUF) { flush() }
        let now = system_monotonic()
        if held.isEmpty { heldSince = now }
        held += bytes
        if now - heldSince >= RecordWriter.holdSeconds { flush() }
        return !closed
    }

    @discardableResult
    public func hold(_ fields: String...) -> Bool {
        hold(Record(fields))
    }

    /// Writes what is held.
    @discardableResult
    public func flush() -> Bool {
        if held.isEmpty || closed { return !closed }
        defer { held.removeAll(keepingCapacity: true) }
        return send(held)
    }

    @discardableResult
    public func write(line: String) -> Bool {
        if closed { return false }
        let bytes = RecordWriter.bytes(line)
        if !held.isEmpty {
            if held.count + bytes.count <= Int(PIPE_BUF) {
                held += bytes
                return flush()
            }
            flush()
        }
        return send(bytes)
    }

    static func bytes(_ line: String) -> [UInt8] {
        let bytes = Array(line.utf8)
        // A record this long would be split by the kernel; metric names are limited well
        // below this, so it means a bug upstream.
        return bytes.count > Int(PIPE_BUF) ? Array(bytes.prefix(Int(PIPE_BUF) - 1)) + [10] : bytes
    }

    private func send(_ bytes: [UInt8]) -> Bool {
        if closed { return false }
        bytes.withUnsafeBytes { buf in
            var done = 0
            while done < buf.count {
                do {
                    done += try system_write_once(fd, UnsafeRawBufferPointer(rebasing: buf[done...]))
                } catch {
                    // A stop request interrupts a write blocked on a stalled reader; a record
                    // already begun is finished (a pipe takes a short record whole or not at all).
                    if Errno.interrupted ~= error && (done > 0 || !Signals.stopRequested) { continue }
                    if Errno.brokenPipe ~= error { RecordWriter.left.store(true, ordering: .relaxed) }
                    closed = true
                    return
                }
            }
        }
        return !closed
    }
}
