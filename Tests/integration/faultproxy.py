#!/usr/bin/env python3
"""A small HTTP/1.1 proxy on loopback that injects faults, for the store tests.

It forwards each request unchanged (Host header included, so SigV4 signatures stay valid)
to an upstream server, or with --memory answers from an in-memory object map itself, and
logs one line per request. Faults are a sequence applied to the attempts of each distinct
request (method + target): with --faults drop,503 the first attempt of every request is
dropped, the second answered 503 SlowDown, the third and later forwarded.

  faultproxy.py --upstream http://127.0.0.1:8080 [--faults drop,503] [--match REGEX] [--rtt MS]
                [--log FILE] [--port-file FILE] [--port N] [--tls CERT KEY]
  faultproxy.py --memory [--max-keys N] [--listing-bug no-token|repeat-token|unsorted]
                [--corrupt-get] [--no-multi-delete] ...   # a minimal path-style S3 in memory

Faults: drop (read the request, close without answering), reset (close with a TCP RST),
503 / 500 / 429 (answer that status with an S3-style error body; 503 says SlowDown),
cut (forward, then send the headers and half the body and close), stall:S (wait S seconds
before forwarding), skew:S (forward with x-amz-date moved S seconds, as a wrong clock would
send it), short (forward, answer half the body with a Content-Length that says so: a
truncation only a checksum can tell), flip (forward, flip one bit in the middle of the body),
flipx (flip, and drop the ETag: a corruption nothing in HTTP can tell), pass (forward).

Misbehaving stores: 405 (answer 405 Method Not Allowed), 401 (answer 401 Unauthorized, as to
an expired token), flipput (flip one bit in the middle
of the request body and drop its ETag header before forwarding: a Swift upload corrupted on
the way), badetag (forward, answer with an ETag that is not the body's MD5), bigheader
(forward, add a 300 KB header to the answer), endless (answer 200 and a body that never
ends), trickle (forward, send the answer's body a byte every 0.4 s), cycle (an S3 listing
whose continuation tokens go round: the first page is forwarded and marked truncated, later
pages are answered here, empty, with the tokens A, B, A, B..., on every attempt).

Latency (--rtt MS): a store MS milliseconds away. Each request waits MS/2 before it is
forwarded upstream (or answered here) and its answer MS/2 before it is sent back, so every
exchange costs one round trip more; a new client connection first waits one whole round trip
before its first request is read (the TCP and TLS handshakes a distant store costs). The waits
are sleeps in the connection's own thread (one thread per client connection), so concurrent
connections overlap as they would over a long wire, and each client connection keeps one
upstream connection alive for all its requests (the proxy adds no connection setups of its
own). It composes with --faults and --log: a fault's answer is delayed the same way.

With --random P, each attempt of each request instead gets a fault drawn from --faults with
probability P (else pass), from a generator seeded by --seed.

Log lines (tab-separated): METHOD TARGET STATUS FAULT CONNECTION. STATUS is - when no
answer was sent.
"""
import argparse
import base64
import hashlib
import http.client
import os
import re
import socket
import socketserver
import sys
import threading
import time
import urllib.parse
from xml.etree import ElementTree
from xml.sax.saxutils import escape


class State:
    def __init__(self, args):
        self.faults = [f for f in args.faults.split(",") if f] if args.faults else []
        self.match = re.compile(args.match) if args.match else None
        self.attempts = {}
        self.lock = threading.Lock()
        self.log = open(args.log, "a", buffering=1) if args.log else None
        self.upstream = urllib.parse.urlsplit(args.upstream) if args.upstream else None
        self.objects = {}
        self.buckets = set()
        self.max_keys = args.max_keys
        self.listing_bug = args.listing_bug
        self.corrupt_get = args.corrupt_get
        self.no_multi_delete = args.no_multi_delete
        self.connections = 0
        self.random = args.random
        self.rng = __import__("random").Random(args.seed)
        self.half_rtt = args.rtt / 2000.0

    def delay(self):
        """Half a round trip (--rtt), slept in the calling connection's thread."""
        if self.half_rtt:
            time.sleep(self.half_rtt)

    def fault_for(self, method, target):
        if self.match and not self.match.search(f"{method} {target}"):
            return "pass"
        if "cycle" in self.faults:   # a listing that goes round does so for ever
            return "cycle"
        if self.random is not None:
            with self.lock:
                return self.rng.choice(self.faults) if self.faults and self.rng.random() < self.random else "pass"
        with self.lock:
            n = self.attempts.get((method, target), 0)
            self.attempts[(method, target)] = n + 1
        return self.faults[n] if n < len(self.faults) else "pass"

    def record(self, method, target, status, fault, conn):
        if self.log:
            with self.lock:
                self.log.write(f"{method}\t{target}\t{status}\t{fault}\t{conn}\n")


def skew(amz_date, seconds):
    """An x-amz-date moved by `seconds` (or the other way if that would change the day, which
    would break the signature's scope before the server looks at the time)."""
    t = time.mktime(time.strptime(amz_date, "%Y%m%dT%H%M%SZ")) - time.timezone
    for shift in (seconds, -seconds):
        moved = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(t + shift))
        if moved[:8] == amz_date[:8]:
            return moved
    return amz_date


def error_body(status):
    code = {503: "SlowDown", 500: "InternalError", 429: "TooManyRequests", 405: "MethodNotAllowed",
            401: "Unauthorized"}.get(status, "Error")
    return (f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{code}</Code>'
            f"<Message>injected by faultproxy</Message></Error>").encode()


class Handler(socketserver.BaseRequestHandler):
    def setup(self):
        st = self.server.state
        with st.lock:
            st.connections += 1
            self.conn_id = st.connections
        self.rfile = self.request.makefile("rb")
        self.upstream = None

    def finish(self):
        if self.upstream:
            self.upstream.close()

    def handle(self):
        st = self.server.state
        st.delay()   # a new connection: one round trip before its first request arrives
        st.delay()
        while True:
            try:
                req = self.read_request()
            except (ConnectionError, OSError):
                return
            if req is None:
                return
            if not self.serve(*req):
                return

    def read_request(self):
        line = self.rfile.readline(65537)
        if not line:
            return None
        method, target, _ = line.decode("latin-1").rstrip("\r\n").split(" ", 2)
        headers = []
        while True:
            h = self.rfile.readline(65537)
            if h in (b"\r\n", b"\n", b""):
                break
            name, value = h.decode("latin-1").rstrip("\r\n").split(":", 1)
            headers.append((name, value.strip()))
        length = int(next((v for n, v in headers if n.lower() == "content-length"), "0"))
        if any(n.lower() == "transfer-encoding" and "chunked" in v.lower() for n, v in headers):
            body = self.read_chunked()
            headers = [(n, v) for n, v in headers if n.lower() != "transfer-encoding"]
            headers.append(("Content-Length", str(len(body))))
        else:
            body = self.rfile.read(length) if length else b""
        return method, target, headers, body

    def read_chunked(self):
        out = b""
        while True:
            size = int(self.rfile.readline().split(b";")[0].strip(), 16)
            if size == 0:
                while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                    pass
                return out
            out += self.rfile.read(size)
            self.rfile.readline()

    def send(self, status, reason, headers, body, cut=False, head=False):
        self.server.state.delay()   # the answer on its way back
        lines = [f"HTTP/1.1 {status} {reason}"]
        # A HEAD answer keeps the upstream's Content-Length (the size of what a GET would send).
        keep_length = head and any(n.lower() == "content-length" for n, _ in headers)
        drop = ("transfer-encoding", "connection") + (() if keep_length else ("content-length",))
        lines += [f"{n}: {v}" for n, v in headers if n.lower() not in drop]
        if not keep_length:
            lines.append(f"Content-Length: {len(body)}")
        data = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        if not head:
            data += body[: len(body) // 2] if cut else body
        self.request.sendall(data)

    def serve(self, method, target, headers, body):
        st = self.server.state
        st.delay()   # the request on its way to the store
        fault = st.fault_for(method, target)
        if fault == "drop":
            st.record(method, target, "-", fault, self.conn_id)
            return False
        if fault == "reset":
            st.record(method, target, "-", fault, self.conn_id)
            self.request.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
            return False
        if fault == "endless":
            st.record(method, target, 200, fault, self.conn_id)
            st.delay()
            self.request.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n")
            chunk = b"[" + b" " * 65535
            try:
                while True:
                    self.request.sendall(chunk)
                    chunk = b" " * 65536
            except OSError:
                return False
        if fault == "cycle" and "continuation-token=" in target:
            token = "B" if "continuation-token=A" in target else "A"
            st.record(method, target, 200, fault, self.conn_id)
            page = ('<?xml version="1.0" encoding="UTF-8"?>\n<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
                    f"<Name>b</Name><KeyCount>0</KeyCount><MaxKeys>1000</MaxKeys><IsTruncated>true</IsTruncated>"
                    f"<NextContinuationToken>{token}</NextContinuationToken></ListBucketResult>").encode()
            self.send(200, "OK", [("Content-Type", "application/xml")], page)
            return True
        if fault == "flipput" and body:
            i = len(body) // 2
            body = body[:i] + bytes([body[i] ^ 0x10]) + body[i + 1:]
            headers = [(n, v) for n, v in headers if n.lower() != "etag"]
        if fault in ("503", "500", "429", "405", "401"):
            status = int(fault)
            st.record(method, target, status, fault, self.conn_id)
            eb = error_body(status)
            self.send(status, "Injected", [("Content-Type", "application/xml")], eb, head=method == "HEAD")
            return True
        if fault.startswith("stall:"):
            time.sleep(float(fault.split(":", 1)[1]))
        if fault.startswith("skew:"):
            headers = [(n, skew(v, int(fault.split(":", 1)[1])) if n.lower() == "x-amz-date" else v) for n, v in headers]
        try:
            status, reason, rheaders, rbody = self.forward(method, target, headers, body)
        except (ConnectionError, OSError, http.client.HTTPException) as e:
            st.record(method, target, "-", f"upstream-error:{type(e).__name__}", self.conn_id)
            return False
        cut = fault == "cut" and len(rbody) > 1
        if fault == "short" and len(rbody) > 1:
            rbody = rbody[: len(rbody) // 2]
        if fault in ("flip", "flipx") and rbody:
            i = len(rbody) // 2
            rbody = rbody[:i] + bytes([rbody[i] ^ 0x10]) + rbody[i + 1:]
        if fault == "flipx":
            rheaders = [(n, v) for n, v in rheaders if n.lower() != "etag"]
        if fault == "badetag":
            rheaders = [(n, v) for n, v in rheaders if n.lower() != "etag"] + [("ETag", '"%s"' % ("0" * 32))]
        if fault == "bigheader":
            rheaders = rheaders + [("X-Padding", "x" * 300 * 1024)]

        if fault == "cycle" and b"<IsTruncated>" in rbody:
            rbody = re.sub(rb"<IsTruncated>false</IsTruncated>", b"<IsTruncated>true</IsTruncated><NextContinuationToken>A</NextContinuationToken>", rbody)
        if fault == "trickle" and rbody and method != "HEAD":
            st.record(method, target, status, fault, self.conn_id)
            lines = [f"HTTP/1.1 {status} {reason}"] + [f"{n}: {v}" for n, v in rheaders if n.lower() not in ("transfer-encoding", "connection", "content-length")]
            lines.append(f"Content-Length: {len(rbody)}")
            try:
                st.delay()
                self.request.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
                for b in rbody:
                    self.request.sendall(bytes([b]))
                    time.sleep(0.4)
            except OSError:
                pass
            return False
        st.record(method, target, status, fault, self.conn_id)
        self.send(status, reason, rheaders, rbody, cut=cut, head=method == "HEAD")
        return not cut

    def forward(self, method, target, headers, body):
        st = self.server.state
        if st.upstream is None:
            return self.memory(method, target, headers, body)
        for attempt in (1, 2):
            if self.upstream is None:
                self.upstream = http.client.HTTPConnection(st.upstream.hostname, st.upstream.port, timeout=120)
            try:
                self.upstream.putrequest(method, target, skip_host=True, skip_accept_encoding=True)
                for n, v in headers:
                    self.upstream.putheader(n, v)
                self.upstream.endheaders(body if body or method in ("PUT", "POST") else None)
                r = self.upstream.getresponse()
                data = r.read()
                return r.status, r.reason, r.getheaders(), data
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                # A kept-alive upstream connection closed by the server: reconnect once.
                self.upstream.close()
                self.upstream = None
                if attempt == 2:
                    raise

    def memory(self, method, target, headers, body):
        """A minimal S3 in memory (no authentication; path-style, or virtual-hosted as
        BUCKET.localhost): buckets, objects with
        Content-MD5 checks, ListObjectsV2 paging, DeleteObjects. Buckets exist once created
        or once an object is put into them."""
        st = self.server.state
        parts = urllib.parse.urlsplit(target)
        if parts.path == "/_echo":
            # The request as received: method, headers and body, for client tests.
            text = method + "\n" + "".join(f"{n.lower()}: {v}\n" for n, v in headers) + "\n"
            return 200, "OK", [("Content-Type", "text/plain")], text.encode("latin-1") + body
        bucket, _, key = urllib.parse.unquote(parts.path[1:]).partition("/")
        host = next((v for n, v in headers if n.lower() == "host"), "")
        if ".localhost" in host:  # virtual-hosted: BUCKET.localhost:PORT
            bucket, key = host.split(".localhost")[0], urllib.parse.unquote(parts.path[1:])
        query = dict(urllib.parse.parse_qsl(parts.query, keep_blank_values=True))
        hmap = {n.lower(): v for n, v in headers}
        xml = [("Content-Type", "application/xml")]

        def error(status, code, message=""):
            return status, "Error", xml, f"<Error><Code>{code}</Code><Message>{message}</Message></Error>".encode()

        if "content-md5" in hmap and base64.b64encode(hashlib.md5(body).digest()).decode() != hmap["content-md5"]:
            return error(400, "BadDigest", "Content-MD5 does not match")
        with st.lock:
            if method == "PUT" and not key:
                st.buckets.add(bucket)
                return 200, "OK", [], b""
            if method == "PUT":
                st.buckets.add(bucket)
                st.objects[(bucket, key)] = body
                return 200, "OK", [("ETag", '"%s"' % hashlib.md5(body).hexdigest())], b""
            if bucket not in st.buckets:
                return error(404, "NoSuchBucket", "no such bucket")
            if method == "GET" and not key and query.get("list-type") == "2":
                return 200, "OK", xml, self.listing(bucket, query)
            if method == "POST" and not key and "delete" in query and st.no_multi_delete:
                return error(501, "NotImplemented", "DeleteObjects is not supported")
            if method == "POST" and not key and "delete" in query:
                keys = [k.text or "" for k in ElementTree.fromstring(body).iter() if k.tag.endswith("Key")]
                if len(keys) > 1000:
                    return error(400, "MalformedXML", "more than 1000 keys")
                out = ['<?xml version="1.0" encoding="UTF-8"?>\n<DeleteResult>']
                for k in keys:
                    if "FAILME" in k:
                        out.append(f"<Error><Key>{escape(k)}</Key><Code>InternalError</Code><Message>injected</Message></Error>")
                    else:
                        st.objects.pop((bucket, k), None)
                out.append("</DeleteResult>")
                return 200, "OK", xml, "".join(out).encode()
            if method in ("GET", "HEAD"):
                if (bucket, key) not in st.objects:
                    return error(404, "NoSuchKey", "not here")
                data = st.objects[(bucket, key)]
                hs = [("ETag", '"%s"' % hashlib.md5(data).hexdigest()), ("Content-Type", "application/octet-stream")]
                if method == "HEAD":
                    return 200, "OK", hs + [("Content-Length", str(len(data)))], b""
                if st.corrupt_get and data:
                    data = bytes([data[0] ^ 1]) + data[1:]
                return 200, "OK", hs, data
            if method == "DELETE":
                st.objects.pop((bucket, key), None)
                return 204, "No Content", [], b""
        return 405, "Method Not Allowed", [], b""

    def listing(self, bucket, query):
        st = self.server.state
        prefix = query.get("prefix", "")
        limit = min(int(query.get("max-keys", st.max_keys)), st.max_keys)
        after = query.get("continuation-token", "")
        keys = sorted((k for b, k in st.objects if b == bucket and k.startswith(prefix) and k > after),
                      key=lambda k: k.encode())
        page, more = keys[:limit], len(keys) > limit
        url = query.get("encoding-type") == "url"
        out = ['<?xml version="1.0" encoding="UTF-8"?>\n<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">',
               f"<Name>{bucket}</Name><Prefix>{escape(prefix)}</Prefix><KeyCount>{len(page)}</KeyCount>",
               f"<MaxKeys>{limit}</MaxKeys><IsTruncated>{'true' if more else 'false'}</IsTruncated>"]
        if url:
            out.append("<EncodingType>url</EncodingType>")
        if st.listing_bug == "unsorted":
            page = list(reversed(page))
        if more and st.listing_bug != "no-token":
            token = after if st.listing_bug == "repeat-token" and after else page[-1]
            out.append(f"<NextContinuationToken>{escape(token)}</NextContinuationToken>")
        for k in page:
            name = urllib.parse.quote_plus(k, safe="/") if url else escape(k)
            size = len(st.objects[(bucket, k)])
            out.append(f"<Contents><Key>{name}</Key><LastModified>2026-11-27T00:00:00.000Z</LastModified>"
                       f"<ETag>&quot;x&quot;</ETag><Size>{size}</Size><StorageClass>STANDARD</StorageClass></Contents>")
        out.append("</ListBucketResult>")
        return "".join(out).encode()


class Server(socketserver.ThreadingMixIn, socketserver.TCPServer):
    allow_reuse_address = True
    daemon_threads = True
    request_queue_size = 128   # many clients connecting at once are not refused (and retried 1 s later)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--upstream", help="http://HOST:PORT to forward to")
    p.add_argument("--memory", action="store_true", help="serve objects from memory instead of forwarding")
    p.add_argument("--faults", default="", help="comma-separated faults for attempts 1, 2, ... of each request")
    p.add_argument("--match", help="only requests whose 'METHOD TARGET' matches this regex get faults")
    p.add_argument("--random", type=float, help="each attempt gets a fault from --faults with this probability")
    p.add_argument("--seed", type=int, default=1, help="--random: seed of the generator")
    p.add_argument("--log", help="append one line per request to this file")
    p.add_argument("--max-keys", type=int, default=1000, help="--memory: most keys per listing page")
    p.add_argument("--listing-bug", choices=["no-token", "repeat-token", "unsorted"],
                   help="--memory: answer listings wrongly in this way")
    p.add_argument("--corrupt-get", action="store_true", help="--memory: flip a bit of every GET body (ETag unchanged)")
    p.add_argument("--no-multi-delete", action="store_true", help="--memory: answer DeleteObjects 501 NotImplemented")
    p.add_argument("--rtt", type=float, default=0, metavar="MS",
                   help="add a round trip of MS milliseconds: MS/2 before forwarding each request, MS/2 before "
                        "sending each answer, and one more round trip before a new connection's first request")
    p.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (default: a free one)")
    p.add_argument("--port-file", help="write the bound port here once listening")
    p.add_argument("--tls", nargs=2, metavar=("CERT", "KEY"), help="serve HTTPS with this certificate and key")
    args = p.parse_args()
    if bool(args.upstream) == bool(args.memory):
        p.error("give exactly one of --upstream and --memory")
    server = Server(("127.0.0.1", args.port), Handler)
    server.state = State(args)
    if args.tls:
        import ssl
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(*args.tls)
        server.socket = ctx.wrap_socket(server.socket, server_side=True)
    port = server.server_address[1]
    if args.port_file:
        with open(args.port_file + ".tmp", "w") as f:
            f.write(f"{port}\n")
        os.replace(args.port_file + ".tmp", args.port_file)
    else:
        print(port, flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    sys.exit(main())
