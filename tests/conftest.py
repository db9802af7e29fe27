from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.netlab import Lab, network_lab

IS_ROOT = os.geteuid() == 0


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    skip = pytest.mark.skip(reason="needs root for network namespaces and raw sockets")
    for item in items:
        if "root" in item.keywords and not IS_ROOT:
            item.add_marker(skip)


@pytest.fixture
def lab() -> Iterator[Lab]:
    """A fresh network namespace joined to the host by a veth pair (root only)."""
    if not IS_ROOT:
        pytest.skip("needs root for network namespaces")
    with network_lab() as created:
        yield created
