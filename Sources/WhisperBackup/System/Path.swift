#if canImport(Glibc)
import Glibc
#endif

/// Plain string path helpers (no Foundation): paths here are byte strings from the OS, split
/// at '/' bytes (ByteText: a '/' before a combining mark is a separator too).
public enum Path {
    public static func join(_ a: String, _ b: String) -> String {
        if a.isEmpty { return b }
        if b.isEmpty { return a }
        return a.hasSuffix(bytes: "/") ? a + b : a + "/" + b
    }

    public static func directory(of path: String) -> String {
        guard let i = path.utf8.lastIndex(of: UInt8(ascii: "/")) else { return "." }
        return i == path.startIndex ? "/" : String(path[..<i])
    }

    public static func lastComponent(_ path: String) -> String {
        guard let i = path.utf8.lastIndex(of: UInt8(ascii: "/")) else { return path }
        return String(path[path.utf8.index(after: i)...])
    }

    public static func exists(_ path: String) -> Bool { (try? system_lstat(path)) != nil }

    /// `mkdir -p`: creates missing parents; an existing directory is fine.
    public static func makeDirectories(_ path: String, mode: mode_t = 0o755) throws {
        if path.isEmpty || path.sameBytes("/") || path.sameBytes(".") { return }
        do {
            try system_mkdir(path, mode)
        } catch Errno.fileExists {
            let st = try system_stat(path)
            if !st.isDirectory { throw Errno(ENOTDIR, call: "mkdir", path: path) }
        } catch Errno.noSuchFileOrDirectory {
            try makeDirectories(directory(of: path), mode: mode)
            do { try system_mkdir(path, mode) } catch Errno.fileExists {}
        }
    }

    /// Creates the directories of `relative` under `realRoot` (a realpath) one component at a
    /// time, and refuses a component that is not a directory inside the root (a symlink that
    /// leads elsewhere): nothing is created or written outside the root.
    public static func makeDirectories(under realRoot: String, _ relative: String) throws {
        var current = realRoot
        for part in relative.split(byte: UInt8(ascii: "/"), omittingEmpty: true) {
            current = join(current, String(part))
            do {
                let st = try system_lstat(current)
                if st.isDirectory { continue }
                if st.isSymlink {
                    let target = try system_realpath(current)
                    if target.sameBytes(realRoot) || target.hasPrefix(bytes: realRoot + "/"), try system_stat(target).isDirectory { continue }
                    throw Errno(ELOOP, call: "mkdir", path: "\(current) leads outside the root (\(target)); not written")
                }
                throw Errno(ENOTDIR, call: "mkdir", path: current)
            } catch Errno.noSuchFileOrDirectory {
                do { try system_mkdir(current) } catch Errno.fileExists {}
            }
        }
    }

    /// An absolute, normalized form of `path` (no symlink resolution).
    public static func absolute(_ path: String) -> String {
        var p = path
        if !p.hasPrefix("/") {
            var buf = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
            if getcwd(&buf, buf.count) != nil {
                p = join(String(cString: buf), p)
            }
        }
        var parts: [Substring] = []
        for c in p.split(byte: UInt8(ascii: "/"), omittingEmpty: true) {
            if c.sameBytes(".") { continue }
            if c.sameBytes("..") { if !parts.isEmpty { parts.removeLast() }; continue }
            parts.append(c)
        }
        return "/" + parts.joined(separator: "/")
    }
}
