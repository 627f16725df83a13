/// A growable raw byte buffer reused across records, so a process reading thousands of
/// files allocates (and page-faults in) its working memory once, not once per file.
public final class ByteBuffer {
    public private(set) var storage: UnsafeMutableRawBufferPointer
    /// Bytes in use, from the start.
    public var count = 0

    public init(capacity: Int = 1 << 20) {
        storage = .allocate(byteCount: max(capacity, 1), alignment: 16)
    }

    deinit { storage.deallocate() }

    /// Makes room for at least `capacity` bytes; the contents are not kept.
    public func reserve(_ capacity: Int) {
        if capacity <= storage.count { return }
        storage.deallocate()
        storage = .allocate(byteCount: capacity + capacity / 4, alignment: 16)
    }

    public var bytes: UnsafeRawBufferPointer { UnsafeRawBufferPointer(rebasing: storage[0..<count]) }
}
