"""The import contracts see every module: a directory without ``__init__.py`` is invisible to
import-linter, so a forbidden import there would leave every contract KEPT."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.timeout(60)

ROOT = Path(__file__).resolve().parents[2]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def _python_dirs(package: Path) -> list[Path]:
    return sorted(
        {path.parent for path in package.rglob("*.py") if "__pycache__" not in path.parts}
    )


@pytest.mark.parametrize("package", ["agent", "tui"])
def test_every_directory_of_python_modules_is_a_package(package: str) -> None:
    missing = [
        str(directory.relative_to(ROOT))
        for directory in _python_dirs(ROOT / package)
        if not (directory / "__init__.py").is_file()
    ]
    assert missing == []


def _copy_of_the_tree(into: Path) -> Path:
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for package in ("agent", "tui"):
        shutil.copytree(ROOT / package, into / package, ignore=ignore)
    shutil.copy(ROOT / "pyproject.toml", into / "pyproject.toml")
    return into


def _lint_imports(tree: Path) -> subprocess.CompletedProcess[str]:
    # The copy comes first on the path, ahead of the installed checkout.
    env = {**os.environ, "PYTHONPATH": str(tree)}
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"],
        cwd=tree,
        env=env,
        capture_output=True,
        text=True,
        timeout=50,
        check=False,
    )


def test_the_contracts_hold_on_the_tree(tmp_path: Path) -> None:
    result = _lint_imports(_copy_of_the_tree(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def test_a_kubernetes_import_in_any_view_module_breaks_a_contract(tmp_path: Path) -> None:
    tree = _copy_of_the_tree(tmp_path)
    views = sorted((tree / "tui" / "views").rglob("*.py"))
    for module in views:
        with module.open("a") as source:
            source.write("\nimport kubernetes  # noqa\n")
    result = _lint_imports(tree)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Only the Kubernetes source talks to Kubernetes BROKEN" in result.stdout
    for module in views:
        dotted = ".".join(module.relative_to(tree).with_suffix("").parts)
        dotted = dotted.removesuffix(".__init__")
        assert f"{dotted} -> kubernetes" in result.stdout, dotted


def test_an_upward_import_breaks_the_layers(tmp_path: Path) -> None:
    tree = _copy_of_the_tree(tmp_path)
    with (tree / "tui" / "model" / "flows.py").open("a") as source:
        source.write("\nimport tui.views.app  # noqa\n")
    result = _lint_imports(tree)
    assert result.returncode == 1
    assert "tui.model is not allowed to import tui.views" in result.stdout


def test_a_cycle_between_packages_breaks_a_contract(tmp_path: Path) -> None:
    tree = _copy_of_the_tree(tmp_path)
    # The recording source reads with output's readers; output reading back a source closes a loop.
    with (tree / "tui" / "output" / "jsonl.py").open("a") as source:
        source.write("\nimport tui.sources.recording  # noqa\n")
    result = _lint_imports(tree)
    assert result.returncode == 1
    assert "No cycles are allowed in tui." in result.stdout
