"""English and French: the message catalogs, the request's language, and translation.

English text is the message id (gettext's convention); `web/locale/<lang>.po` holds the
other languages, read with Babel at start. Pages mark translatable text with ``T(...)``,
which also tags it (``data-t``) so the browser can switch language in place, mid-call.
Messages may hold ``{name}`` fields, filled after translation.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from babel.messages.pofile import read_po
from markupsafe import Markup

from common.errors import NexusError

DEFAULT_LANGUAGE = "en"
LANGUAGES = {"en": "English", "fr": "Français"}
SESSION_LANGUAGE = "language"


@dataclass(frozen=True)
class Translator:
    language: str
    messages: dict[str, str]

    def __call__(self, message: str, **fields: Any) -> str:
        text = self.messages.get(message) or message
        return text.format(**fields) if fields else text

    def error(self, exc: NexusError) -> str:
        """An error's message in this language (its template translated, then filled)."""
        return self(exc.template, **exc.fields)

    def tagged(self, message: str, **fields: Any) -> Markup:
        """Translated text in a span the browser can re-translate in place."""
        return Markup('<span data-t="{}"{}>{}</span>').format(
            message,
            Markup(' data-t-fields="{}"').format(json.dumps(fields, ensure_ascii=False))
            if fields
            else "",
            self(message, **fields),
        )


class Catalogs:
    """Every language's messages, loaded once."""

    def __init__(self, directory: Path) -> None:
        self._translators = {DEFAULT_LANGUAGE: Translator(DEFAULT_LANGUAGE, {})}
        for language in LANGUAGES:
            if language == DEFAULT_LANGUAGE:
                continue
            with (directory / f"{language}.po").open("rb") as handle:
                catalog = read_po(handle, locale=language)
            messages = {
                str(entry.id): str(entry.string)
                for entry in catalog
                if entry.id and entry.string and not entry.fuzzy
            }
            self._translators[language] = Translator(language, messages)

    def translator(self, language: str) -> Translator:
        return self._translators.get(language) or self._translators[DEFAULT_LANGUAGE]


def preferred_language(accept_language: str | None) -> str:
    """The first of our languages in an ``Accept-Language`` header, by weight."""
    ranked: list[tuple[float, int, str]] = []
    for index, part in enumerate((accept_language or "").split(",")):
        tag, _, params = part.strip().partition(";")
        weight = 1.0
        if params.strip().startswith("q="):
            try:
                weight = float(params.strip()[2:])
            except ValueError:
                continue
        primary = tag.strip().split("-")[0].lower()
        if primary in LANGUAGES and weight > 0:
            ranked.append((-weight, index, primary))
    return min(ranked)[2] if ranked else DEFAULT_LANGUAGE


def page_language(chosen: object, known: str | None, accept_language: str | None) -> str:
    """A page's language: the one chosen on a page this session (``chosen``), else the one
    known for the person the page is for (an applicant's application), else the browser's
    preference."""
    if isinstance(chosen, str) and chosen in LANGUAGES:
        return chosen
    if known is not None and known in LANGUAGES:
        return known
    return preferred_language(accept_language)
