"""Keystone v3 specifics against a real Keystone (scripts/servers/keystone.sh) and a Swift proxy
that takes its tokens: scoping by ids, region and interface choice from the catalog, a ready
token, OS_STORAGE_URL, and the errors an operator sees. Skips unless the WSP_TEST_KEYSTONE_*
variables are set (test_swift.py lists them)."""
import os
import time
import uuid

import pytest

from conftest import gen_tree, records, run, sh
from test_swift import backend_from_env, expire_token, http, no_secrets, q


@pytest.fixture
def ks():
    return backend_from_env("keystone")


@pytest.fixture
def url():
    return f"swift://wsp-ks-{uuid.uuid4().hex[:10]}/p/"


def push(env, root, url, spool):
    return sh(f"wsp-find --root {q(root)} '*' | wsp-snap --spool {q(spool)} | wsp-push --create-container {q(url)}",
              env=env, check=False)


def test_scoped_by_ids_and_internal_interface(ks, url, tmp_path):
    g = os.environ.get
    env = dict(ks.env, OS_USERNAME="", OS_USER_DOMAIN_NAME="", OS_PROJECT_NAME="", OS_PROJECT_DOMAIN_NAME="",
               OS_USER_ID=g("WSP_TEST_KEYSTONE_USER_ID"), OS_PROJECT_ID=g("WSP_TEST_KEYSTONE_PROJECT_ID"),
               OS_INTERFACE="internal")
    root = gen_tree(tmp_path / "w", files=3)
    p = push(env, root, url, tmp_path / "s")
    assert p.returncode == 0, p.stderr
    assert {r[5] for r in records(p.stdout)} == {"stored"}
    # The same objects through the name-scoped credentials: one project, one account.
    got = run("wsp-pull", "list", url, "*", env=ks.env)
    assert got.returncode == 0 and len(records(got.stdout)) == 3


def test_region_must_be_chosen_when_the_catalog_has_several(ks, url):
    p = run("wsp-pull", "list", url, "*", env=dict(ks.env, OS_REGION_NAME=""))
    assert p.returncode == 2
    assert p.stderr.strip().splitlines() == [
        f"wsp-pull: {url}: Keystone at {ks.env['OS_AUTH_URL']}/auth/tokens: several object-store endpoints "
        "for interface public (regions RegionOne, RegionTwo): set OS_REGION_NAME"]
    p = run("wsp-pull", "list", url, "*", env=dict(ks.env, OS_REGION_NAME="Atlantis"))
    assert p.returncode == 2 and "no object-store endpoint for interface public in region Atlantis" in p.stderr


def test_storage_url_overrides_the_catalog(ks, url, tmp_path):
    env = dict(ks.env, OS_REGION_NAME="RegionTwo", OS_STORAGE_URL=os.environ["WSP_TEST_KEYSTONE_SWIFT_URL"])
    p = push(env, gen_tree(tmp_path / "w", files=2), url, tmp_path / "s")
    assert p.returncode == 0, p.stderr


def test_ready_token_without_credentials(ks, url, tmp_path):
    token, storage = ks.token()
    env = {v: "" for v in ks.env} | {"OS_AUTH_TOKEN": token, "OS_STORAGE_URL": storage}
    p = push(env, gen_tree(tmp_path / "w", files=2), url, tmp_path / "s")
    assert p.returncode == 0, p.stderr
    time.sleep(expire_token(ks, token))
    p = run("wsp-pull", "list", url, "*", env=env)
    assert p.returncode == 2 and p.stdout == ""
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and "the token in OS_AUTH_TOKEN was rejected" in lines[0], p.stderr
    assert token not in p.stderr


def test_wrong_project_and_unreachable_keystone(ks, url):
    p = run("wsp-pull", "list", url, "*", env=dict(ks.env, OS_PROJECT_NAME="no-such-project"))
    assert p.returncode == 2 and "refused the credentials (401" in p.stderr, p.stderr
    no_secrets(ks, p.stderr)
    # Nothing listens on port 9: a connection error, retried, then reported on one line. A
    # transient failure that outlasts the retries is a failed run (1), not a configuration
    # error (2): the same command may work in a minute.
    p = run("wsp-pull", "list", "--retries", "1", url, "*", env=dict(ks.env, OS_AUTH_URL="http://127.0.0.1:9/v3"))
    assert p.returncode == 1 and len(p.stderr.strip().splitlines()) == 1 and "127.0.0.1:9" in p.stderr, p.stderr


def test_recorded_fixture_shape_matches_this_keystone(ks):
    """The unit tests parse recorded responses; check a live one still has that shape."""
    token, _ = ks.token()
    st, h, body = http("GET", ks.env["OS_AUTH_URL"] + "/auth/tokens", {"X-Auth-Token": token, "X-Subject-Token": token})
    assert st == 200
    import json
    t = json.loads(body)["token"]
    assert t["expires_at"].endswith("Z")
    stores = [s for s in t["catalog"] if s["type"] == "object-store"]
    assert stores and {e["interface"] for e in stores[0]["endpoints"]} == {"public", "internal", "admin"}
    assert all({"region_id", "url", "interface"} <= set(e) for e in stores[0]["endpoints"])
