"""faultproxy.py in front of a server, for the tests that inject faults or count requests."""
import collections
import os
import subprocess
import sys
import time
import urllib.parse
import uuid

import pytest

FAULTPROXY = os.path.join(os.path.dirname(os.path.abspath(__file__)), "faultproxy.py")


class Proxy:
    """One faultproxy.py process; its log counts and classifies the requests it passed."""

    def __init__(self, tmp_path, upstream, faults="", match=None, rand=None, seed=1, rtt=0):
        tag = uuid.uuid4().hex[:6]
        self.log = tmp_path / f"proxy-{tag}.log"
        port_file = tmp_path / f"proxy-{tag}.port"
        args = [sys.executable, FAULTPROXY, "--upstream", upstream, "--faults", faults, "--log", str(self.log),
                "--port-file", str(port_file)]
        if match:
            args += ["--match", match]
        if rand is not None:
            args += ["--random", str(rand), "--seed", str(seed)]
        if rtt:
            args += ["--rtt", str(rtt)]
        self.process = subprocess.Popen(args)
        for _ in range(500):
            if port_file.exists():
                break
            assert self.process.poll() is None, "faultproxy.py exited"
            time.sleep(0.02)
        self.url = f"http://127.0.0.1:{port_file.read_text().strip()}"

    def entries(self):
        if not self.log.exists():
            return []
        return [line.split("\t") for line in self.log.read_text().splitlines()]

    def mark(self):
        return len(self.entries())

    def faults(self):
        """The faults injected so far, by kind."""
        return collections.Counter(e[3] for e in self.entries() if e[3] != "pass")

    def stop(self):
        self.process.terminate()
        self.process.wait(timeout=10)


@pytest.fixture
def proxies():
    """Proxies a test starts; stopped at its end."""
    started = []
    yield started
    for p in started:
        p.stop()


def store_proxy(kind, be, tmp_path, proxies, credentials=False, **proxy_args):
    """A proxy in front of the store of `be` (backends.py; `kind` swift or an S3 server), and
    the environment that sends the tools through it: on Swift, the storage URL moved to the
    proxy, with the backend's token (counts without authentication requests) or, with
    `credentials`, the credentials and auth URL through the proxy (the tools authenticate
    and renew the token themselves: the test servers' tokens live seconds)."""
    if kind == "swift":
        up = urllib.parse.urlsplit(be.storage)
        px = Proxy(tmp_path, f"{up.scheme}://{up.netloc}", **proxy_args)
        env = dict(be.env, ST_AUTH="", ST_USER="", ST_KEY="", OS_AUTH_TOKEN=be.token, OS_STORAGE_URL=px.url + up.path)
        if credentials:
            env.update(ST_AUTH=px.url + urllib.parse.urlsplit(be.env["ST_AUTH"]).path, ST_USER=be.env["ST_USER"],
                       ST_KEY=be.env["ST_KEY"], OS_AUTH_TOKEN="")
    else:
        px = Proxy(tmp_path, be.endpoint, **proxy_args)
        env = dict(be.env, AWS_ENDPOINT_URL=px.url)
    proxies.append(px)
    return px, env
