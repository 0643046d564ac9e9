"""Browser assets: jinja2 templates and plain JavaScript and CSS served as they are."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).parent
TEMPLATES = ROOT / "templates"
STATIC = ROOT / "static"
LOCALE = ROOT / "locale"
