"""``podtap open`` of a recording the user may not read (root's 0600 file opened by someone
else): one sentence and exit 1, whatever the format, never a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.unit.test_open_malformed import GOOD_ENTRY, good_pcap, write_har

pytestmark = [pytest.mark.root, pytest.mark.timeout(60)]

REPO = Path(__file__).resolve().parents[2]
# Root without the capabilities that bypass file permissions reads like any other user.
NO_OVERRIDE = ["setpriv", "--bounding-set=-all", "--inh-caps=-all"]
NOBODY = 65534


def recording(tmp_path: Path, suffix: str) -> Path:
    path = tmp_path / f"someone-elses.{suffix}"
    if suffix == "har":
        write_har(path, [GOOD_ENTRY])
    elif suffix == "pcap":
        good_pcap(path)
    else:
        path.write_text('{"podtap":"0.1.0","target":"netns/shop","ports":[8080]}\n')
    os.chown(path, NOBODY, NOBODY)
    path.chmod(0o600)
    return path


@pytest.mark.parametrize("suffix", ["jsonl", "har", "pcap"])
def test_a_recording_the_user_may_not_read_is_one_sentence(tmp_path: Path, suffix: str) -> None:
    path = recording(tmp_path, suffix)
    done = subprocess.run(
        [*NO_OVERRIDE, sys.executable, "-m", "tui", "open", str(path)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=30,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 1, done.stderr
    assert done.stderr == f"podtap: cannot read {path}: Permission denied.\n"
