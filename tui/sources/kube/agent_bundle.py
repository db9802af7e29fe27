"""The agent's code for a stock Python image: a zipapp delivered by a ConfigMap.

The zipapp holds podtap's agent package and the pure-Python part of websockets (its compiled
speedups are optional), with a ``__main__`` that runs ``podtap agent``. Without msgspec the
agent uses its pure-Python subset (agent/msgspec_subset.py). Python imports pure modules
straight from a zip file, so the image needs nothing written to its filesystem.
"""

from __future__ import annotations

import base64
import functools
import io
import zipfile
from pathlib import Path
from typing import Any

import websockets

import agent
from tui.sources.kube.agent_spec import (
    APP_LABEL,
    APP_VALUE,
    BUNDLE_KEY,
    SESSION_LABEL,
    AgentSettings,
)

MAX_BUNDLE_BYTES = 700 * 1024
"""A ConfigMap holds at most 1 MiB, and binaryData is base64 (4/3 larger)."""

_MAIN = """\
import sys

from agent.cli import main

sys.exit(main())
"""
# Parts of websockets the agent's asyncio server never imports.
_SKIPPED = ("legacy", "trio", "sync", "__main__.py", "cli.py")


@functools.cache
def agent_bundle() -> bytes:
    """The zipapp (built once per process: the same bytes for every ConfigMap)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as bundle:
        bundle.writestr("__main__.py", _MAIN)
        _add_package(bundle, Path(agent.__file__).parent, "agent", ())
        _add_package(bundle, Path(websockets.__file__).parent, "websockets", _SKIPPED)
    data = buffer.getvalue()
    if len(data) > MAX_BUNDLE_BYTES:
        raise RuntimeError(f"the agent's zipapp is {len(data)} bytes, too big for a ConfigMap")
    return data


def _add_package(bundle: zipfile.ZipFile, root: Path, name: str, skipped: tuple[str, ...]) -> None:
    for path in sorted(root.rglob("*.py")):
        relative = path.relative_to(root)
        if relative.parts[0] in skipped:
            continue
        # A fixed date: the same code makes the same bytes.
        info = zipfile.ZipInfo(f"{name}/{relative.as_posix()}", date_time=(2020, 1, 1, 0, 0, 0))
        info.compress_type = zipfile.ZIP_DEFLATED
        bundle.writestr(info, path.read_bytes())


def bundle_name(session: str) -> str:
    return f"podtap-{session}-agent"


def bundle_configmap(settings: AgentSettings, namespace: str) -> dict[str, Any]:
    """The session's ConfigMap holding the agent's zipapp."""
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": bundle_name(settings.session),
            "namespace": namespace,
            "labels": {APP_LABEL: APP_VALUE, SESSION_LABEL: settings.session},
        },
        "binaryData": {BUNDLE_KEY: base64.b64encode(agent_bundle()).decode()},
    }
