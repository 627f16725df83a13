#if canImport(Glibc)
import Glibc
#endif

/// Where a restore puts its spool when no `--spool` is given: in memory (/dev/shm) when that
/// is a tmpfs with room, else in the run's work directory. On disk, each sync of the restore
/// (`wsp-merge` makes a batch of new files durable with one `syncfs`) also writes out the
/// spool files waiting between `wsp-pull get` and `wsp-merge`: 100,000 files restored in 51 s
/// with the spool on disk, 29 s with it in memory (restic: 47 s). A backup keeps its spool on
/// disk: a live node's memory is carbon's page cache, and a file:// store on the spool's
/// filesystem takes the spool files without copying them.
enum MemorySpool {
    static let parent = "/dev/shm"
    static let tmpfsMagic: Int64 = 0x0102_1994

    /// Room the tmpfs must have: twice `--spool-max`, and what emptied spool files may keep
    /// (`Spool.maxFree` files of up to `Spool.keepBlocksBytes`), so the spool never fills it.
    static func fits(filesystemType: Int64, available: Int64, spoolMax: Int64) -> Bool {
        let keep = Int64(Spool.maxFree) * Spool.keepBlocksBytes
        return filesystemType == tmpfsMagic && spoolMax <= (Int64.max - keep) / 2 && available >= 2 * spoolMax + keep
    }

    /// A new directory for the spool under /dev/shm, or nil when it does not fit there. Its
    /// name carries the run's pid (`whisper-backup.PID.XXXXXX`): what a run killed with SIGKILL
    /// leaves there tells whose it was, and whether that run is gone.
    static func create(spoolMax: Int64) -> String? {
        guard let fs = try? system_statfs(parent),
              fits(filesystemType: fs.type, available: fs.available, spoolMax: spoolMax) else { return nil }
        var template = Array("\(parent)/whisper-backup.\(system_getpid()).XXXXXX".utf8CString)
        guard mkdtemp(&template) != nil else { return nil }
        return String(cString: template)
    }
}
