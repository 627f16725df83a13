"""faultproxy.py --rtt: a store a round trip away, as scripts/bench-latency.py measures through it.

Real S3 requests (signed by botocore) to swift-aio's s3api through the proxy: a request on a new
connection pays the connection's round trip and its own, a request on a kept-alive connection
only its own, and concurrent connections wait side by side, not one after another.
Needs WSP_TEST_S3_ENDPOINT, AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (scripts/servers/swift-aio.sh env).
"""
import os
import threading
import time
import urllib.parse

import pytest

import proxylib
from proxylib import proxies  # noqa: F401 (fixture)


def s3_env():
    missing = [v for v in ("WSP_TEST_S3_ENDPOINT", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY") if not os.environ.get(v)]
    if missing:
        pytest.skip(f"{', '.join(missing)} not set (scripts/servers/swift-aio.sh env)")
    return os.environ["WSP_TEST_S3_ENDPOINT"]


class Client:
    """One HTTP/1.1 connection to `url` that sends SigV4-signed ListBuckets requests (botocore
    signs them) and times each: from sending the request (or opening the connection, for the
    first) to the end of the answer."""

    def __init__(self, url):
        import http.client
        from botocore.auth import S3SigV4Auth
        from botocore.awsrequest import AWSRequest
        from botocore.credentials import Credentials
        self.url, self.AWSRequest = url, AWSRequest
        self.signer = S3SigV4Auth(Credentials(os.environ["AWS_ACCESS_KEY_ID"], os.environ["AWS_SECRET_ACCESS_KEY"]),
                                "s3", os.environ.get("AWS_REGION") or "us-east-1")
        u = urllib.parse.urlsplit(url)
        self.conn = http.client.HTTPConnection(u.hostname, u.port, timeout=30)

    def get(self):
        req = self.AWSRequest(method="GET", url=self.url + "/")
        self.signer.add_auth(req)
        start = time.monotonic()
        self.conn.request("GET", "/", headers=dict(req.headers.items()))
        r = self.conn.getresponse()
        r.read()
        assert r.status == 200, r.status
        return time.monotonic() - start


def test_rtt_costs_a_round_trip_per_request_and_one_more_per_connection(tmp_path, proxies):
    px = proxylib.Proxy(tmp_path, s3_env(), rtt=200)
    proxies.append(px)
    c = Client(px.url)
    first, second = c.get(), c.get()
    print(f"new connection {first:.3f} s, kept-alive {second:.3f} s")
    assert first >= 0.4
    assert 0.2 <= second < 0.4
    assert len({e[4] for e in px.entries()}) == 1


def test_rtt_waits_of_concurrent_connections_overlap(tmp_path, proxies):
    px = proxylib.Proxy(tmp_path, s3_env(), rtt=300)
    proxies.append(px)
    clients = [Client(px.url) for _ in range(8)]
    times = []
    threads = [threading.Thread(target=lambda c=c: times.append(c.get())) for c in clients]
    start = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.monotonic() - start
    print(f"8 concurrent requests on new connections: {wall:.3f} s, each {[round(t, 3) for t in sorted(times)]}")
    assert len(times) == 8 and all(t >= 0.6 for t in times), times
    assert len({e[4] for e in px.entries()}) == 8
    # One after another they would take 8 x 600 ms; side by side about 600 ms.
    assert wall < 1.5
