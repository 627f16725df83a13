import CCurl
#if canImport(Glibc)
import Glibc
#endif

/// The project's one HTTP client, over libcurl easy handles that are reused for every request,
/// so connections (and TLS sessions) are kept alive between requests to a host: one for
/// requests one at a time, and a few for batches sent at once (`performMany`).
/// Not thread-safe: one client per thread (the tools are single-threaded processes).
///
/// It neither retries nor follows redirects: a store classifies each outcome (status codes,
/// `HTTPError.isTransient`) and the `RetryStore` wrapper retries.
public final class HTTPClient {
    public struct Options: Sendable {
        /// Seconds to establish a connection (TCP and TLS).
        public var connectTimeout: Double = 15
        /// A transfer moving less than one byte per second for this long is aborted.
        public var stallTimeout: Double = 60
        /// The deadline of every request: it must end within this many seconds plus one second
        /// per `deadlineRate` bytes of body (the larger of the body sent and the announced
        /// length of the answer), however steadily bytes trickle. `WSP_HTTP_DEADLINE` sets it.
        public var deadline: Double = HTTPClient.defaultDeadline
        public var deadlineRate: Double = 16 * 1024
        /// The most bytes of an answer held in memory (listings, errors, auth and JSON/XML
        /// answers); object bodies go to their file, unbounded.
        public var maxMemoryBody = HTTPClient.maxMemoryBody
        /// Skip TLS certificate and host name verification (an explicit opt-out).
        public var insecure = false
        /// A PEM file of CA certificates instead of the system's.
        public var caBundle: String? = nil
        public var userAgent = "whisper-backup/\(wspVersion)"
        public init() {
            if let text = system_getenv("WSP_HTTP_DEADLINE"), let d = Double(text), d > 0, d.isFinite { deadline = d }
        }
    }

    public static let defaultDeadline = 120.0
    public static let maxMemoryBody = 16 << 20

    public let options: Options
    /// Requests performed so far (each attempt counts).
    public private(set) var requestCount = 0
    /// The handle of `perform`, one request at a time.
    private let main: EasyHandle
    /// The handles of `performMany` and the multi handle that runs them (made at its first
    /// use); their connections stay open in the multi handle between batches.
    private var lanes: [EasyHandle] = []
    private var multi: UnsafeMutableRawPointer?
    private let trace: Bool

    /// nil once libcurl is loaded and initialised, else why not.
    private static let loadError: String? = {
        var reason = [CChar](repeating: 0, count: 256)
        if CCurl_load(&reason, reason.count) != 0 { return String(cString: reason) }
        return CCurl_global_init(CCurl_GLOBAL_DEFAULT()) == CURLE_OK ? nil : "libcurl could not be initialised"
    }()

    public init(options: Options = Options()) throws {
        if let reason = HTTPClient.loadError { throw HTTPError(.other, reason) }
        if let text = system_getenv("WSP_HTTP_DEADLINE"), !text.isEmpty, Double(text).map({ $0 > 0 && $0.isFinite }) != true {
            throw ConfigError("WSP_HTTP_DEADLINE=\(text): not a positive number of seconds")
        }
        self.options = options
        main = try EasyHandle()
        // WSP_HTTP_TRACE=1: one line per request on stderr (method, URL, status, bytes, time).
        // URLs carry no credentials (they travel in headers), so nothing secret is printed.
        trace = (system_getenv("WSP_HTTP_TRACE") ?? "").isEmpty == false
    }

    deinit {
        if let multi {
            // The lanes are out of the multi handle between batches: cleaned up first.
            lanes.removeAll()
            CCurl_multi_cleanup(multi)
        }
    }

    /// One libcurl easy handle and the buffer its errors are written to.
    final class EasyHandle {
        let handle: UnsafeMutableRawPointer
        let errorBuffer: UnsafeMutablePointer<CChar>
        init() throws {
            guard let h = CCurl_easy_init() else { throw HTTPError(.other, "libcurl could not be initialised") }
            handle = h
            errorBuffer = .allocate(capacity: Int(CCurl_ERROR_SIZE()) + 1)
            errorBuffer.initialize(repeating: 0, count: Int(CCurl_ERROR_SIZE()) + 1)
        }
        deinit {
            CCurl_easy_cleanup(handle)
            errorBuffer.deallocate()
        }
    }

    /// A request set up on a handle, until its answer is read.
    private struct Call {
        let easy: EasyHandle
        let transfer: Transfer
        let headerList: UnsafeMutablePointer<curl_slist>?
        let method: String
        let url: String
        let started: Double
    }

    /// Sends `request` and returns the final response, whatever its status.
    /// - Throws: `HTTPError` when no complete response arrived.
    public func perform(_ request: HTTPRequest) throws -> HTTPResponse {
        let call = try start(request, on: main)
        return try finish(call, CCurl_easy_perform(main.handle))
    }

    /// Sends `requests` with up to `width` of them in flight at once (over as many kept-alive
    /// connections, in this thread: libcurl's multi interface), and returns each one's response
    /// or error, in order. Over a store a round trip away, a batch takes about
    /// `requests.count / width` round trips instead of `requests.count`.
    public func performMany(_ requests: [HTTPRequest], width: Int) -> [Result<HTTPResponse, Error>] {
        let width = min(width, requests.count)
        if width > 1 && multi == nil { multi = CCurl_multi_init() }
        while lanes.count < width, let easy = try? EasyHandle() { lanes.append(easy) }
        guard width > 1, let multi, lanes.count > 1 else {
            return requests.map { r in Result { try perform(r) } }
        }
        var results = [Result<HTTPResponse, Error>?](repeating: nil, count: requests.count)
        var idle = Array(lanes.prefix(width))
        var running: [UnsafeMutableRawPointer: (index: Int, call: Call)] = [:]
        var next = 0
        while next < requests.count || !running.isEmpty {
            while next < requests.count, let easy = idle.popLast() {
                let i = next
                next += 1
                if Signals.stopRequested {
                    results[i] = .failure(HTTPError(.interrupted, "\(requests[i].method) \(requests[i].url): not sent: interrupted"))
                    idle.append(easy)
                    continue
                }
                do {
                    let call = try start(requests[i], on: easy)
                    let mc = CCurl_multi_add_handle(multi, easy.handle)
                    if mc != CURLM_OK {
                        results[i] = .failure(HTTPError(.other, "\(call.method) \(call.url): libcurl: \(String(cString: CCurl_multi_strerror(mc)))"))
                        release(call)
                        idle.append(easy)
                        continue
                    }
                    running[easy.handle] = (i, call)
                } catch {
                    results[i] = .failure(error)
                    idle.append(easy)
                }
            }
            if running.isEmpty { continue }
            var active: Int32 = 0
            let mc = CCurl_multi_perform(multi, &active)
            var rc = CURLE_OK
            var ended = 0
            while let h = CCurl_multi_next_done(multi, &rc) {
                guard let (i, call) = running.removeValue(forKey: h) else { continue }
                CCurl_multi_remove_handle(multi, h)
                results[i] = Result { try finish(call, rc) }
                idle.append(call.easy)
                ended += 1
            }
            if mc != CURLM_OK {
                // The multi handle itself failed: whatever is still running fails with it.
                for (h, (i, call)) in running {
                    CCurl_multi_remove_handle(multi, h)
                    release(call)
                    results[i] = .failure(HTTPError(.other, "\(call.method) \(call.url): libcurl: \(String(cString: CCurl_multi_strerror(mc)))"))
                    idle.append(call.easy)
                }
                running.removeAll()
            } else if ended == 0 && !running.isEmpty {
                // A short wait, so that signals and deadlines are seen within a fraction of a
                // second even when nothing moves.
                _ = CCurl_multi_poll(multi, 200)
            }
        }
        return results.map { $0! }
    }

    /// Sets `easy` up to send `request`.
    private func start(_ request: HTTPRequest, on easy: EasyHandle) throws -> Call {
        requestCount += 1
        let started = system_monotonic()
        let transfer = try Transfer(request)
        transfer.limits = (options.deadline, options.deadlineRate, options.maxMemoryBody, started)
        let ctx = Unmanaged.passUnretained(transfer).toOpaque()
        let handle = easy.handle

        CCurl_easy_reset(handle)  // keeps the connection cache
        easy.errorBuffer[0] = 0
        var headerList: UnsafeMutablePointer<curl_slist>? = nil
        for h in request.headers { headerList = CCurl_slist_append(headerList, "\(h.name): \(h.value)") }
        // No `Expect: 100-continue` round trip; no form content type on POST.
        for h in ["Expect:", "Content-Type:"] where !request.headers.contains(where: { $0.name.lowercased() == h.dropLast().lowercased() }) {
            headerList = CCurl_slist_append(headerList, h)
        }
        let method = request.method.uppercased()
        let call = Call(easy: easy, transfer: transfer, headerList: headerList, method: method, url: request.url, started: started)

        var rc = CURLE_OK
        func set(_ o: CURLoption, _ v: Int) { if rc == CURLE_OK { rc = CCurl_easy_setopt_long(handle, o, v) } }
        func set(_ o: CURLoption, _ s: String) { if rc == CURLE_OK { rc = s.withCString { CCurl_easy_setopt_ptr(handle, o, $0) } } }
        func set(_ o: CURLoption, _ p: UnsafeRawPointer?) { if rc == CURLE_OK { rc = CCurl_easy_setopt_ptr(handle, o, p) } }

        set(CURLOPT_URL, request.url)  // libcurl copies strings
        set(CURLOPT_NOSIGNAL, 1)
        set(CURLOPT_FOLLOWLOCATION, 0)
        set(CURLOPT_PATH_AS_IS, 1)  // send `/./` and `/../` in keys as they are (they are signed so)
        set(CURLOPT_TCP_KEEPALIVE, 1)
        set(CURLOPT_CONNECTTIMEOUT_MS, Int(options.connectTimeout * 1000))
        set(CURLOPT_LOW_SPEED_LIMIT, 1)
        set(CURLOPT_LOW_SPEED_TIME, max(1, Int(options.stallTimeout)))
        set(CURLOPT_SSL_VERIFYPEER, options.insecure ? 0 : 1)
        set(CURLOPT_SSL_VERIFYHOST, options.insecure ? 0 : 2)
        if let ca = options.caBundle { set(CURLOPT_CAINFO, ca) }
        set(CURLOPT_USERAGENT, options.userAgent)
        set(CURLOPT_HTTPHEADER, UnsafeRawPointer(headerList))
        set(CURLOPT_ERRORBUFFER, UnsafeRawPointer(easy.errorBuffer))
        set(CURLOPT_WRITEDATA, UnsafeRawPointer(ctx))
        set(CURLOPT_HEADERDATA, UnsafeRawPointer(ctx))
        set(CURLOPT_XFERINFODATA, UnsafeRawPointer(ctx))
        set(CURLOPT_NOPROGRESS, 0)
        if rc == CURLE_OK { rc = CCurl_easy_setopt_write(handle, httpWriteCallback) }
        if rc == CURLE_OK { rc = CCurl_easy_setopt_header(handle, httpHeaderCallback) }
        if rc == CURLE_OK { rc = CCurl_easy_setopt_xferinfo(handle, httpProgressCallback) }

        switch (method, transfer.uploadSize) {
        case ("GET", nil):
            set(CURLOPT_HTTPGET, 1)
        case ("HEAD", nil):
            set(CURLOPT_NOBODY, 1)
        case (_, nil):
            set(CURLOPT_CUSTOMREQUEST, method)
        case (_, let size?):
            set(CURLOPT_UPLOAD, 1)
            set(CURLOPT_READDATA, UnsafeRawPointer(ctx))
            set(CURLOPT_SEEKDATA, UnsafeRawPointer(ctx))
            if rc == CURLE_OK { rc = CCurl_easy_setopt_read(handle, httpReadCallback) }
            if rc == CURLE_OK { rc = CCurl_easy_setopt_seek(handle, httpSeekCallback) }
            if rc == CURLE_OK { rc = CCurl_easy_setopt_off(handle, CURLOPT_INFILESIZE_LARGE, curl_off_t(size)) }
            if method != "PUT" { set(CURLOPT_CUSTOMREQUEST, method) }
        }
        if rc != CURLE_OK {
            release(call)
            throw HTTPError(.other, "\(method) \(request.url): libcurl option rejected: \(String(cString: CCurl_easy_strerror(rc)))", code: Int(rc.rawValue))
        }
        return call
    }

    private func release(_ call: Call) {
        CCurl_slist_free_all(call.headerList)
        call.transfer.close()
    }

    /// The response of a call whose transfer ended with `rc`.
    private func finish(_ call: Call, _ rc: CURLcode) throws -> HTTPResponse {
        defer { release(call) }
        var status = 0
        CCurl_easy_getinfo_long(call.easy.handle, CURLINFO_RESPONSE_CODE, &status)
        let transfer = call.transfer
        if trace {
            let ms = Int((system_monotonic() - call.started) * 1000)
            let outcome = rc == CURLE_OK ? String(status) : "error \(rc.rawValue)"
            let line = "wsp-http: \(call.method) \(call.url) -> \(outcome) (\(transfer.received) B, \(ms) ms)\n"
            system_write_stderr(line)
        }
        if rc != CURLE_OK {
            throw error(rc, call: call)
        }
        transfer.close()
        return HTTPResponse(status: status, headers: transfer.headers, body: transfer.memory,
                            bodyBytes: transfer.received, bodyMD5: transfer.takeMD5())
    }

    private func error(_ rc: CURLcode, call: Call) -> HTTPError {
        let (method, url, transfer, errorBuffer) = (call.method, call.url, call.transfer, call.easy.errorBuffer)
        let detail = errorBuffer[0] != 0 ? String(cString: errorBuffer) : String(cString: CCurl_easy_strerror(rc))
        if let local = transfer.localError {
            return HTTPError(.local, "\(method) \(url): \(local)", code: Int(rc.rawValue))
        }
        if let allowed = transfer.deadlineExceeded {
            let tenths = Int((allowed * 10).rounded(.up))
            return HTTPError(.timeout, "\(method) \(url): no complete answer within the deadline of \(tenths / 10).\(tenths % 10) s (\(Int(options.deadline)) s, plus 1 s per \(Int(options.deadlineRate / 1024)) KiB of body)", code: Int(rc.rawValue))
        }
        if transfer.bodyTooLarge {
            return HTTPError(.other, "\(method) \(url): the answer passed \(options.maxMemoryBody >> 20) MiB, the most read into memory for a listing, error or auth answer", code: Int(rc.rawValue))
        }
        if rc == CURLE_OUT_OF_MEMORY && transfer.received == 0 {
            // What libcurl (7.88) answers, with no further word, to a header line over 100 KB.
            return HTTPError(.other, "\(method) \(url): a header of the answer is too large (libcurl takes 100 KB a line)", code: Int(rc.rawValue))
        }
        let kind: HTTPError.Kind
        switch rc {
        case CURLE_ABORTED_BY_CALLBACK:
            kind = .interrupted
        case CURLE_OPERATION_TIMEDOUT:
            kind = .timeout
        case CURLE_COULDNT_RESOLVE_PROXY, CURLE_COULDNT_RESOLVE_HOST, CURLE_COULDNT_CONNECT,
             CURLE_WEIRD_SERVER_REPLY, CURLE_PARTIAL_FILE, CURLE_GOT_NOTHING, CURLE_SEND_ERROR,
             CURLE_RECV_ERROR, CURLE_HTTP2, CURLE_HTTP2_STREAM, CURLE_SSL_CONNECT_ERROR,
             CURLE_SEND_FAIL_REWIND, CURLE_AGAIN, CURLE_HTTP3, CURLE_QUIC_CONNECT_ERROR:
            kind = .connection
        case CURLE_PEER_FAILED_VERIFICATION, CURLE_SSL_CERTPROBLEM, CURLE_SSL_CACERT_BADFILE,
             CURLE_SSL_ISSUER_ERROR, CURLE_SSL_PINNEDPUBKEYNOTMATCH, CURLE_SSL_CRL_BADFILE,
             CURLE_SSL_CIPHER, CURLE_USE_SSL_FAILED, CURLE_SSL_ENGINE_NOTFOUND, CURLE_SSL_ENGINE_SETFAILED:
            kind = .tls
        default:
            kind = .other
        }
        var hint = ""
        if kind == .tls && !options.insecure { hint = " (check the CA bundle, or pass --insecure to skip verification)" }
        return HTTPError(kind, "\(method) \(url): \(detail)\(hint)", code: Int(rc.rawValue))
    }
}

/// State of one request while libcurl runs it; the callbacks get it as their user pointer.
final class Transfer {
    let uploadSize: Int64?
    let uploadBytes: [UInt8]
    let uploadFile: FileDescriptor?
    var uploadOffset: Int64 = 0
    let responseFile: FileDescriptor?
    var md5: Digest? = nil
    var headers: [(name: String, value: String)] = []
    var memory: [UInt8] = []
    var received: Int64 = 0
    var localError: String?
    /// (deadline, deadlineRate, maxMemoryBody, started) from the client's options.
    var limits: (deadline: Double, rate: Double, maxMemory: Int, started: Double) = (.infinity, 1, .max, 0)
    /// The seconds allowed, once the request ran past them.
    var deadlineExceeded: Double?
    var bodyTooLarge = false

    init(_ request: HTTPRequest) throws {
        switch request.body {
        case .empty:
            uploadSize = ["PUT", "POST"].contains(request.method.uppercased()) ? 0 : nil
            uploadBytes = []
            uploadFile = nil
        case .bytes(let b):
            uploadSize = Int64(b.count)
            uploadBytes = b
            uploadFile = nil
        case .file(let path):
            do {
                let fd = try FileDescriptor.open(path, O_RDONLY)
                uploadFile = fd
                do { uploadSize = Int64(try fd.stat().st_size) } catch { fd.close(); throw error }
            } catch {
                throw HTTPError(.local, "request body \(path): \(error)")
            }
            uploadBytes = []
        }
        if let path = request.responseFile {
            do {
                responseFile = try FileDescriptor.open(path, O_WRONLY | O_CREAT | O_TRUNC)
            } catch {
                uploadFile?.close()
                throw HTTPError(.local, "response file \(path): \(error)")
            }
            md5 = Digest(.md5)
        } else {
            responseFile = nil
        }
    }

    private var closed = false
    func close() {
        if closed { return }
        closed = true
        uploadFile?.close()
        responseFile?.close()
    }

    func takeMD5() -> [UInt8]? { md5.take()?.finish() }

    /// The response status of the headers received so far.
    var status = 0

    func header(_ line: UnsafeRawBufferPointer) {
        var end = line.count
        while end > 0 && (line[end - 1] == 10 || line[end - 1] == 13) { end -= 1 }
        let text = String(decoding: UnsafeRawBufferPointer(rebasing: line[0..<end]), as: UTF8.self)
        if text.hasPrefix("HTTP/") {
            // A new response begins (after 100 Continue): forget the interim one's headers.
            headers.removeAll()
            let parts = text.split(separator: " ", maxSplits: 2)
            status = parts.count > 1 ? Int(parts[1]) ?? 0 : 0
        } else if let colon = text.firstIndex(of: ":") {
            let name = text[..<colon].lowercased()
            var value = Substring(text[text.index(after: colon)...])
            while value.first == " " || value.first == "\t" { value = value.dropFirst() }
            while value.last == " " || value.last == "\t" { value = value.dropLast() }
            headers.append((name, String(value)))
        }
    }

    /// Returns false to abort the transfer: past its deadline, or stopped by a signal.
    func progress(downloadTotal: Int64, uploadTotal: Int64) -> Bool {
        if Signals.stopRequested { return false }
        let allowed = limits.deadline + Double(max(downloadTotal, uploadTotal, uploadSize ?? 0)) / limits.rate
        if system_monotonic() - limits.started > allowed {
            deadlineExceeded = allowed
            return false
        }
        return true
    }

    /// Returns false to abort the transfer.
    func body(_ data: UnsafeRawBufferPointer) -> Bool {
        received += Int64(data.count)
        if let out = responseFile, (200..<300).contains(status) {
            do {
                try out.writeAll(data)
            } catch {
                localError = "\(error)"
                return false
            }
            md5?.update(data)
        } else {
            if memory.count + data.count > limits.maxMemory {
                bodyTooLarge = true
                return false
            }
            memory.append(contentsOf: data)
        }
        return true
    }

    /// Fills `buffer` with the next part of the upload; nil when reading failed.
    func read(into buffer: UnsafeMutableRawBufferPointer) -> Int? {
        guard let size = uploadSize else { return 0 }
        let n = Int(min(Int64(buffer.count), size - uploadOffset))
        if n <= 0 { return 0 }
        if let fd = uploadFile {
            do {
                let got = try fd.read(into: UnsafeMutableRawBufferPointer(rebasing: buffer[0..<n]), at: uploadOffset)
                if got != n {
                    localError = "request body \(fd.path) shrank while being sent"
                    return nil
                }
            } catch {
                localError = "\(error)"
                return nil
            }
        } else {
            uploadBytes.withUnsafeBytes { src in
                buffer.baseAddress!.copyMemory(from: src.baseAddress! + Int(uploadOffset), byteCount: n)
            }
        }
        uploadOffset += Int64(n)
        return n
    }

    func seek(to offset: Int64) -> Bool {
        guard let size = uploadSize, offset >= 0, offset <= size else { return false }
        uploadOffset = offset
        return true
    }
}

private func httpTransfer(_ p: UnsafeMutableRawPointer?) -> Transfer {
    Unmanaged<Transfer>.fromOpaque(p!).takeUnretainedValue()
}

private let httpWriteCallback: @convention(c) (UnsafeMutablePointer<CChar>?, Int, Int, UnsafeMutableRawPointer?) -> Int = { ptr, size, count, ctx in
    let n = size * count
    guard n > 0, let ptr else { return 0 }
    return httpTransfer(ctx).body(UnsafeRawBufferPointer(start: ptr, count: n)) ? n : 0
}

private let httpHeaderCallback: @convention(c) (UnsafeMutablePointer<CChar>?, Int, Int, UnsafeMutableRawPointer?) -> Int = { ptr, size, count, ctx in
    let n = size * count
    guard let ptr else { return n }
    httpTransfer(ctx).header(UnsafeRawBufferPointer(start: ptr, count: n))
    return n
}

private let httpReadCallback: @convention(c) (UnsafeMutablePointer<CChar>?, Int, Int, UnsafeMutableRawPointer?) -> Int = { ptr, size, count, ctx in
    guard let ptr else { return CCurl_READFUNC_ABORT() }
    let got = httpTransfer(ctx).read(into: UnsafeMutableRawBufferPointer(start: ptr, count: size * count))
    return got ?? CCurl_READFUNC_ABORT()
}

private let httpSeekCallback: @convention(c) (UnsafeMutableRawPointer?, curl_off_t, CInt) -> CInt = { ctx, offset, origin in
    guard origin == SEEK_SET else { return CCurl_SEEKFUNC_FAIL() }
    return httpTransfer(ctx).seek(to: Int64(offset)) ? CCurl_SEEKFUNC_OK() : CCurl_SEEKFUNC_FAIL()
}

private let httpProgressCallback: @convention(c) (UnsafeMutableRawPointer?, curl_off_t, curl_off_t, curl_off_t, curl_off_t) -> CInt = { ctx, dltotal, _, ultotal, _ in
    httpTransfer(ctx).progress(downloadTotal: Int64(dltotal), uploadTotal: Int64(ultotal)) ? 0 : 1
}
