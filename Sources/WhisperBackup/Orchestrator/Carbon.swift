#if canImport(Glibc)
import Glibc
#endif

/// The run's figures to carbon's plaintext port: `PATH VALUE TIMESTAMP` lines over TCP.
public enum Carbon {
    /// PREFIX.MODE.CNAME lines: last_run, last_success, success, exit_code, duration,
    /// failures, versions_removed, files.S, bytes.D.
    public static func lines(prefix: String, mode: RunMode, samples: [(name: String, label: String?, value: String)], time: Int64) -> String {
        var out = ""
        for s in samples {
            var n: String
            if let l = s.label {
                let v = l.split(separator: "=", maxSplits: 1)[1]
                n = (s.name == "last_run_files" ? "files." : "bytes.") + v
            } else if s.name == "last_run_timestamp_seconds" { n = "last_run" }
            else if s.name == "last_success_timestamp_seconds" { n = "last_success" }
            else {
                n = s.name
                if n.hasPrefix("last_run_") { n.removeFirst("last_run_".count) }
                if n.hasSuffix("_seconds") { n.removeLast("_seconds".count) }
            }
            out += "\(prefix).\(mode.rawValue).\(n) \(s.value) \(time)\n"
        }
        return out
    }

    /// Sends `text` to host:port within `timeout` seconds; the reason it failed, or nil.
    public static func send(_ text: String, host: String, port: Int, timeout: Double = 10) -> String? {
        var hints = addrinfo()
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var res: UnsafeMutablePointer<addrinfo>? = nil
        let rc = getaddrinfo(host, String(port), &hints, &res)
        guard rc == 0, let first = res else { return String(cString: gai_strerror(rc)) }
        defer { freeaddrinfo(res) }
        var reason = "no address"
        var ai: UnsafeMutablePointer<addrinfo>? = first
        while let a = ai {
            ai = a.pointee.ai_next
            let s = socket(a.pointee.ai_family, a.pointee.ai_socktype | Int32(SOCK_CLOEXEC.rawValue), a.pointee.ai_protocol)
            if s < 0 { reason = system_strerror(errno); continue }
            defer { system_close(s) }
            var tv = timeval(tv_sec: Int(timeout), tv_usec: 0)
            setsockopt(s, SOL_SOCKET, SO_SNDTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
            if connect(s, a.pointee.ai_addr, a.pointee.ai_addrlen) != 0 {
                reason = errno == EINPROGRESS || errno == EAGAIN ? "no answer within \(Int(timeout)) s" : system_strerror(errno)
                continue
            }
            do { try FileDescriptor(rawValue: s, path: "\(host):\(port)").writeAll(text); return nil } catch { reason = "\(error)"; continue }
        }
        return reason
    }
}
