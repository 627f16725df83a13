#if canImport(Glibc)
import Glibc
#endif

/// Brings the files a stage will read next into the page cache, on a thread of its own, so
/// that the disk reads the next files while the stage compresses this one. A backup reads
/// mostly files nobody read lately (carbon touches a few pages of each): read one at a time,
/// every file's read was a wait with a core idle (a 20,000-file first backup from a cold
/// cache took 13 to 18 s, from a warm one 10 s).
///
/// The thread stats a file the state may show unchanged (then the stage only stats it too);
/// it opens the others (which reads the inode) and asks the kernel to read the first `maxBytes`
/// (`POSIX_FADV_WILLNEED`: queued, not waited for). It neither locks nor reads the file, so
/// it changes nothing a snapshot depends on; a file replaced meanwhile is only read twice.
/// Files the stage has already reached are skipped. The thread takes no signal. It is woken
/// once `wakeBatch` files wait for it, not for each: a wake per file (a context switch each
/// way) cost an unchanged run a tenth of its time, when the thread's stat per file keeps
/// pace with the stage's.
final class ReadAhead {
    struct Item {
        var path: String
        /// The state's entry of the file: when its stat still matches, nothing is read.
        var unless: StateEntry?
    }

    /// What is asked for of one file: the rest of a larger one comes with its read.
    static let maxBytes: Int64 = 4 << 20
    /// Files queued before a waiting thread is woken (half of `window`).
    static let wakeBatch = 8

    // Allocated, not stored properties: a pthread object must not move.
    private let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    private let wake = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)
    private var queue: [(index: Int, item: Item)] = []
    private var head = 0
    private var reached = -1
    private var closed = false
    /// The thread waits for files.
    private var idle = false
    private var thread = pthread_t()

    /// Starts the thread; nil when none can be had (the stage then reads as before).
    init?() {
        pthread_mutex_init(mutex, nil)
        pthread_cond_init(wake, nil)
        guard let thread = try? system_startThread({ [self] in work() }) else { return nil }
        self.thread = thread
    }

    deinit {
        pthread_cond_destroy(wake)
        pthread_mutex_destroy(mutex)
        wake.deallocate()
        mutex.deallocate()
    }

    /// Queues the file the stage will reach as its `index`th.
    func add(_ item: Item, index: Int) {
        pthread_mutex_lock(mutex)
        queue.append((index, item))
        if idle && queue.count - head >= ReadAhead.wakeBatch { pthread_cond_signal(wake) }
        pthread_mutex_unlock(mutex)
    }

    /// No more files come: the thread takes the ones queued however few.
    func flush() {
        pthread_mutex_lock(mutex)
        if idle { pthread_cond_signal(wake) }
        pthread_mutex_unlock(mutex)
    }

    /// The stage is at its `index`th file: earlier ones are not worth reading any more.
    func reach(_ index: Int) {
        pthread_mutex_lock(mutex)
        reached = index
        pthread_mutex_unlock(mutex)
    }

    /// Stops the thread and waits for it (it finishes at most the file it is at).
    func finish() {
        pthread_mutex_lock(mutex)
        closed = true
        pthread_cond_signal(wake)
        pthread_mutex_unlock(mutex)
        pthread_join(thread, nil)
    }

    private func next() -> Item? {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        while true {
            if closed { return nil }
            while head < queue.count, queue[head].index <= reached { head += 1 }
            if head < queue.count {
                let item = queue[head].item
                head += 1
                if head > 1024 {   // keep the array short
                    queue.removeFirst(head)
                    head = 0
                }
                return item
            }
            idle = true
            pthread_cond_wait(wake, mutex)
            idle = false
        }
    }

    private func work() {
        while let item = next() { ReadAhead.prefetch(item) }
    }

    static func prefetch(_ item: Item) {
        // A file the state may show unchanged is looked at with one stat, not opened.
        if let entry = item.unless, let st = try? system_stat(item.path), entry.matches(st) { return }
        // O_NONBLOCK: a FIFO named like a whisper file must not block the open.
        guard let fd = try? system_open(item.path, O_RDONLY | O_NONBLOCK | O_CLOEXEC) else { return }
        defer { system_close(fd) }
        guard let st = try? system_fstat(fd), st.isRegularFile else { return }
        system_readAhead(fd, min(Int64(st.st_size), maxBytes))
    }
}
