"""Each layer imports only the layers below it: the media plane knows nothing of the
control plane, and the bottom layer knows nothing of ours."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
OURS = {"common", "recordings", "media", "signalling", "server", "web"}
ALLOWED = {
    "common": set(),
    "recordings": {"common"},
    "media": {"common", "recordings"},
    "signalling": {"common"},
}


def _imported_packages(path: Path, package: str) -> set[str]:
    """Our top-level packages that ``path`` imports (relative imports are its own)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            found.add(package if node.level else (node.module or "").split(".")[0])
    return (found & OURS) - {package}


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_a_package_imports_only_the_layers_below_it(package: str) -> None:
    wrong = {
        str(path.relative_to(ROOT)): sorted(imported - ALLOWED[package])
        for path in sorted((ROOT / package).rglob("*.py"))
        if (imported := _imported_packages(path, package)) - ALLOWED[package]
    }
    assert wrong == {}


def test_a_media_worker_process_loads_nothing_of_the_control_plane() -> None:
    """What the worker process runs, module by module, as Python loads it."""
    script = (
        "import sys, media.worker_process, media.worker; "
        "print(sorted({m.split('.')[0] for m in sys.modules} & "
        f"set({sorted(OURS)!r})))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.strip()
    assert loaded == str(sorted({"common", "media", "recordings"}))


def test_the_layer_check_sees_a_forbidden_import(tmp_path: Path) -> None:
    module = tmp_path / "forwarding.py"
    module.write_text("from server.store import Store\nfrom . import types\n")
    assert _imported_packages(module, "media") == {"server"}
