"""Every tool's --help, checked whole against a snapshot in fixtures/help/: a change to the
help is a change to review. After a deliberate change, rewrite the snapshots with
WSP_UPDATE_HELP=1 python3 -m pytest Tests/integration/test_help.py and read the diff."""
import os

import pytest

from conftest import REPO, run

SNAPSHOTS = os.path.join(REPO, "Tests", "integration", "fixtures", "help")
COMMANDS = [("wsp-find",), ("wsp-snap",), ("wsp-push",), ("wsp-pull",), ("wsp-pull", "list"), ("wsp-pull", "get"),
            ("wsp-pull", "verify"), ("wsp-merge",), ("wsp-prune",)]


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_help_is_exactly_the_snapshot(command):
    p = run(*command, "--help", env={"COLUMNS": "100"})
    assert p.returncode == 0 and p.stderr == "", p.stderr
    path = os.path.join(SNAPSHOTS, "-".join(command) + ".txt")
    if os.environ.get("WSP_UPDATE_HELP"):
        with open(path, "w") as f:
            f.write(p.stdout)
    with open(path) as f:
        expected = f.read()
    assert p.stdout == expected, f"{' '.join(command)} --help changed; if meant, rewrite {path} (WSP_UPDATE_HELP=1)"
