#if canImport(Glibc)
import Glibc
#endif

/// Whole-file writes that a crash never leaves half done: a temp file in the target's
/// directory, fsync, then rename (replace) or link (only if nothing is there), then fsync
/// of the directory so the new name survives a power loss.
public enum AtomicFile {
    /// Prefix of every temp file the project makes; listings skip names that start with it.
    public static let tempPrefix = ".wsp-tmp."

    public enum Placement {
        /// Replace whatever is at the path (rename).
        case replace
        /// Fail with `Errno.fileExists` if something is at the path (link), leaving it untouched.
        case createOnly
    }

    /// A fresh temp path beside `path`.
    public static func tempPath(for path: String) -> String {
        let dir = Path.directory(of: path)
        return Path.join(dir, "\(tempPrefix)\(system_getpid()).\(UInt64.random(in: 0...UInt64.max))")
    }

    /// Removes temp files in `dir` left by processes that died without cleaning up (SIGKILL,
    /// power loss): their names carry the pid (after an optional tag such as `resv.`), and no
    /// process has it any more.
    /// Only the temp files' names are held: `dir` may be large (a state's journals).
    public static func removeStaleTempFiles(in dir: String) {
        var temps: [String] = []
        guard (try? system_forEachEntry(dir) { if $0.name.hasPrefix(bytes: tempPrefix) { temps.append($0.name) } }) != nil else { return }
        for name in temps {
            let parts = name.droppingFirst(bytes: tempPrefix.utf8.count).split(byte: UInt8(ascii: "."), omittingEmpty: true)
            guard let pid = parts.prefix(2).lazy.compactMap({ Int32($0) }).first else { continue }
            if !system_processExists(pid) { _ = try? system_unlink(Path.join(dir, name)) }
        }
    }

    /// Writes the bytes produced by `fill` (given an open descriptor) to `path` atomically.
    /// The temp file is removed on every path out, including failure. Without `durable`
    /// nothing is synced: for caches, where a file lost or emptied by a power loss costs only
    /// work.
    public static func write(_ path: String, mode: mode_t = 0o644, placement: Placement,
                             makeDirectories: Bool = true, durable: Bool = true,
                             _ fill: (FileDescriptor) throws -> Void) throws {
        let dir = Path.directory(of: path)
        if makeDirectories { try Path.makeDirectories(dir) }
        let tmp = tempPath(for: path)
        let fd = try FileDescriptor.open(tmp, O_WRONLY | O_CREAT | O_EXCL, mode: mode)
        TempFiles.register(tmp)
        defer {
            _ = try? system_unlink(tmp)
            TempFiles.unregister(tmp)
        }
        try fd.closeAfter {
            try fill(fd)
            if durable { try fd.sync() }
        }
        switch placement {
        case .replace: try system_rename(tmp, path)
        case .createOnly: try system_link(tmp, path)
        }
        if durable { try syncDirectory(dir) }
    }

    public static func write(_ path: String, bytes: [UInt8], mode: mode_t = 0o644, placement: Placement, durable: Bool = true) throws {
        try write(path, mode: mode, placement: placement, durable: durable) { fd in
            try bytes.withUnsafeBytes { try fd.writeAll($0) }
        }
    }

    public static func syncDirectory(_ dir: String) throws {
        let fd = try FileDescriptor.open(dir, O_RDONLY | O_DIRECTORY)
        try fd.closeAfter { try fd.sync() }
    }
}
