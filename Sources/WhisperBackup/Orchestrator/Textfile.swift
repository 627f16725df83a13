/// The node_exporter textfile of a run: this mode's samples replace its old ones, other
/// modes' are kept, and a failed run keeps the last success time.
public enum Textfile {
    static let help: [(String, String)] = [
        ("last_run_timestamp_seconds", "When the last run ended (Unix time)."),
        ("last_success_timestamp_seconds", "When the last run in which every metric succeeded ended (Unix time)."),
        ("last_run_success", "1 if every metric of the last run succeeded, else 0."),
        ("last_run_exit_code", "Exit status of the last run (0 ok, 1 some metrics failed, 2 configuration)."),
        ("last_run_duration_seconds", "Duration of the last run."),
        ("last_run_failures", "Metrics that failed in the last run."),
        ("last_run_versions_removed", "Stored versions removed by retention or purge in the last run."),
        ("last_run_files", "Files of the last run by outcome."),
        ("last_run_bytes", "Bytes read from disk and written to the store (backup) or to disk (restore) in the last run."),
    ]

    /// The new file's text from the old one's and this run's samples.
    public static func merge(old: String, mode: RunMode, samples: [(name: String, label: String?, value: String)]) -> String {
        var keys: [String: [String]] = [:]
        var values: [String: String] = [:]
        func add(_ key: String, _ value: String) {
            guard let brace = key.firstIndex(of: "{") ?? Optional(key.endIndex) else { return }
            var name = String(key[..<brace])
            guard name.hasPrefix("whisper_backup_") else { return }
            name.removeFirst("whisper_backup_".count)
            guard help.contains(where: { $0.0 == name }) else { return }
            if values[key] == nil { keys[name, default: []].append(key) }
            values[key] = value
        }
        for line in old.split(separator: "\n") where !line.hasPrefix("#") {
            let parts = line.split(separator: " ")
            if parts.count == 2 { add(String(parts[0]), String(parts[1])) }
        }
        for s in samples {
            let labels = "mode=\"\(mode.rawValue)\"" + (s.label.map { l -> String in
                let kv = l.split(separator: "=", maxSplits: 1)
                return ",\(kv[0])=\"\(kv[1])\""
            } ?? "")
            add("whisper_backup_\(s.name){\(labels)}", s.value)
        }
        var out = ""
        for (name, text) in help {
            guard let ks = keys[name], !ks.isEmpty else { continue }
            out += "# HELP whisper_backup_\(name) \(text)\n# TYPE whisper_backup_\(name) gauge\n"
            for k in ks { out += "\(k) \(values[k]!)\n" }
        }
        return out
    }

    /// Writes it atomically (a temp file beside it, renamed), mode 644.
    public static func write(_ path: String, mode: RunMode, samples: [(name: String, label: String?, value: String)]) throws {
        let old = (try? readWhole(path)) ?? ""
        let text = merge(old: old, mode: mode, samples: samples)
        let tmp = "\(path).\(system_getpid()).tmp"
        do {
            let fd = try FileDescriptor.open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode: 0o644)
            defer { fd.close() }
            try fd.writeAll(text)
            system_fchmod(fd.rawValue, 0o644)
            try system_rename(tmp, path)
        } catch {
            _ = try? system_unlink(tmp)
            throw error
        }
    }
}

/// The whole content of a (small) file.
public func readWhole(_ path: String) throws -> String {
    let fd = try FileDescriptor.open(path, O_RDONLY | O_CLOEXEC)
    defer { fd.close() }
    var bytes: [UInt8] = []
    var buf = [UInt8](repeating: 0, count: 65536)
    while true {
        let n = try buf.withUnsafeMutableBytes { try system_read(fd.rawValue, $0.baseAddress!, $0.count, path: path) }
        if n <= 0 { break }
        bytes += buf[0..<n]
    }
    return String(decoding: bytes, as: UTF8.self)
}

#if canImport(Glibc)
import Glibc
#endif
