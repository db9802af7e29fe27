"""Files podtap writes: 0600, never through a symlink, never over a file unless asked."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from agent.errors import UserError
from tests.hostile_traffic import secret_store
from tui.output.jsonl import RecordingHeader
from tui.output.private_file import FileExists, open_private
from tui.output.recording import Recording, write_view

pytestmark = pytest.mark.timeout(30)

HEADER = RecordingHeader(podtap="test", target="netns/shop", ports=[8080])


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_new_file_is_readable_by_its_owner_alone(tmp_path: Path) -> None:
    old = os.umask(0)  # even with nothing masked by the umask
    try:
        with open_private(tmp_path / "new.har") as stream:
            stream.write(b"x")
    finally:
        os.umask(old)
    assert mode(tmp_path / "new.har") == 0o600


def test_an_existing_file_is_refused_and_left_as_it_was(tmp_path: Path) -> None:
    path = tmp_path / "kept.har"
    path.write_text("precious")
    with pytest.raises(FileExists, match=r"kept\.har already exists: add --force"):
        open_private(path, hint=": add --force to replace it")
    assert path.read_text() == "precious"


def test_replacing_empties_the_file_and_narrows_its_mode(tmp_path: Path) -> None:
    path = tmp_path / "old.jsonl"
    path.write_text("old contents")
    path.chmod(0o644)
    with open_private(path, replace=True) as stream:
        stream.write(b"new")
    assert path.read_bytes() == b"new"
    assert mode(path) == 0o600


@pytest.mark.parametrize("replace", [False, True])
def test_a_symlink_is_never_followed(tmp_path: Path, replace: bool) -> None:
    victim = tmp_path / "victim"
    victim.write_text("precious")
    link = tmp_path / "out.har"
    link.symlink_to(victim)
    with pytest.raises(UserError, match=r"out\.har is a symbolic link: podtap does not write"):
        open_private(link, replace=replace)
    assert victim.read_text() == "precious"


def test_a_dangling_symlink_is_not_created_through(tmp_path: Path) -> None:
    link = tmp_path / "out.har"
    link.symlink_to(tmp_path / "elsewhere")
    with pytest.raises(UserError, match="symbolic link"):
        open_private(link)
    assert not (tmp_path / "elsewhere").exists()


def test_a_fifo_is_refused_instead_of_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.har"
    os.mkfifo(fifo)
    with pytest.raises(UserError, match="not a regular file"):
        open_private(fifo, replace=True)


@pytest.mark.parametrize("replace", [False, True])
def test_a_directory_is_one_sentence_that_does_not_suggest_force(
    tmp_path: Path, replace: bool
) -> None:
    directory = tmp_path / "view.har"
    directory.mkdir()
    with pytest.raises(
        UserError, match=r"^cannot write .*: it is a directory; give a file name\.$"
    ):
        open_private(directory, replace=replace)


def test_a_missing_directory_is_named(tmp_path: Path) -> None:
    path = tmp_path / "no" / "such" / "view.har"
    with pytest.raises(UserError, match=f"the directory {tmp_path}/no/such does not exist"):
        open_private(path)


def test_recording_and_written_views_use_the_same_rules(tmp_path: Path) -> None:
    recorded = tmp_path / "rec.har"
    with Recording(recorded, HEADER):
        pass
    assert mode(recorded) == 0o600
    with pytest.raises(FileExists):
        Recording(recorded, HEADER)
    with Recording(recorded, HEADER, replace=True):
        pass
    store = secret_store()
    view = [(conn, store.visible_exchanges(conn.key)) for conn in store.connections.values()]
    for name in ("view.har", "view.jsonl", "view.pcap"):
        written = write_view(tmp_path / name, view, HEADER)
        assert mode(written.path) == 0o600
        with pytest.raises(FileExists):
            write_view(tmp_path / name, view, HEADER)
        write_view(tmp_path / name, view, HEADER, replace=True)
