"""deploy/nginx.conf, filled in as its header tells an operator, run by a real nginx on a
test machine."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from .netns import Machine

CONFIG = Path(__file__).resolve().parents[1] / "deploy" / "nginx.conf"
PLACEHOLDERS = (
    "PAGES_NAME", "TURN_NAME", "PAGES_CERT", "PAGES_KEY", "INTERVIEW_SERVER", "TURN_TLS_SERVER",
)  # fmt: skip


def render(directory: Path, values: dict[str, str]) -> Path:
    """deploy/nginx.conf with its placeholders filled by envsubst, as an operator does."""
    names = " ".join(f"${{{name}}}" for name in PLACEHOLDERS)
    result = subprocess.run(
        ["envsubst", names],
        input=CONFIG.read_text("utf-8"),
        env=os.environ | values,
        capture_output=True,
        text=True,
        check=True,
    )
    assert "${" not in result.stdout, "a placeholder the header does not name"
    rendered = directory / "nginx.conf"
    rendered.write_text(result.stdout)
    return rendered


def start_nginx(proxy: Machine, directory: Path, values: dict[str, str]) -> Path:
    """nginx in the foreground on ``proxy`` with deploy/nginx.conf filled in with
    ``values`` (one per placeholder); returns its log. The caller waits for 443."""
    nginx = ["nginx", "-c", str(render(directory, values)), "-e", "stderr"]
    nginx += ["-g", f"daemon off; pid {directory / 'nginx.pid'};"]
    log = directory / "nginx.log"
    with open(log, "wb") as out:
        proxy.popen(nginx, stdout=out, stderr=subprocess.STDOUT)
    return log
