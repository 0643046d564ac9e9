"""Reading an operator's application file (CSV or JSON Lines) and validating every row.

A file with any bad row imports nothing: `read_applications` collects every problem with
its line number and raises `ImportRejected` listing them all.
"""

from __future__ import annotations

import csv
import re
import zoneinfo
from collections.abc import Callable, Iterator
from datetime import date
from pathlib import Path
from typing import Annotated

import msgspec

from common.errors import BadRequest, ImportRejected

from .store.applications import LANGUAGES, PERSONAL_FIELDS, PersonalValues
from .types import ApplicationType, Program

_NAME = Annotated[str, msgspec.Meta(min_length=1, max_length=100, pattern=r"^[^\x00-\x1f]+$")]


class ApplicationRow(msgspec.Struct, forbid_unknown_fields=True):
    id: Annotated[str, msgspec.Meta(pattern=r"^[A-Z0-9][A-Z0-9-]{3,31}$")]
    program: Program
    application_type: ApplicationType
    surname: _NAME
    given_names: _NAME
    date_of_birth: date
    citizenship: Annotated[str, msgspec.Meta(pattern=r"^[A-Z]{3}$")]
    email: Annotated[str, msgspec.Meta(max_length=254, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")]
    applied_on: date
    card_expiry: date | None = None
    language: Annotated[str, msgspec.Meta(max_length=20)] | None = None
    """Empty: not known (the applicant's messages are then in English and French)."""
    time_zone: Annotated[str, msgspec.Meta(max_length=64)] | None = None
    """Empty: the operator's default (`Settings.applicant_time_zone`) applies."""

    def __post_init__(self) -> None:
        self.language = _language_code(self.language)
        if self.time_zone is not None and not _is_time_zone(self.time_zone):
            raise ValueError(
                f"time_zone {self.time_zone!r} is not an IANA time zone name such as"
                " America/Toronto or America/Vancouver"
            )
        if self.application_type is ApplicationType.RENEWAL and self.card_expiry is None:
            raise ValueError("a renewal needs card_expiry (the current card's expiry date)")
        if self.application_type is ApplicationType.NEW and self.card_expiry is not None:
            raise ValueError("a new application has no card_expiry; leave it empty")
        if self.date_of_birth >= self.applied_on:
            raise ValueError("date_of_birth must be before applied_on")
        if self.date_of_birth.year < 1900:
            raise ValueError("date_of_birth is before 1900")

    def values(self) -> PersonalValues:
        expiry = self.card_expiry.isoformat() if self.card_expiry else None
        return (
            self.program.value,
            self.application_type.value,
            self.surname,
            self.given_names,
            self.date_of_birth.isoformat(),
            self.citizenship,
            self.email,
            self.applied_on.isoformat(),
            expiry,
            self.language,
            self.time_zone,
        )


_LANGUAGE_NAMES = {
    "english": "en",
    "anglais": "en",
    "french": "fr",
    "français": "fr",
    "francais": "fr",
    **{code: code for code in LANGUAGES},
}


def _language_code(given: str | None) -> str | None:
    """A language as the file gives it (``FR ``, ``French``) as its code; None for an empty
    one (not known)."""
    text = (given or "").strip()
    if not text:
        return None
    code = _LANGUAGE_NAMES.get(text.casefold())
    if code is None:
        raise ValueError(
            f"language must be en or fr (English, French), or empty when not known; not {given!r}"
        )
    return code


def _is_time_zone(name: str) -> bool:
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return False
    return True


COLUMNS = ("id", *PERSONAL_FIELDS)
OPTIONAL_COLUMNS = ("card_expiry", "language", "time_zone")
_AT_FIELD = re.compile(r"^(?P<what>.*) - at `\$\.(?P<field>\w+)`$")


def _reason(exc: msgspec.ValidationError | msgspec.DecodeError) -> str:
    """msgspec's "Expected `int`, got `str` - at `$.x`" as "x: expected `int`, got `str`"."""
    text = str(exc)
    text = text[0].lower() + text[1:]
    match = _AT_FIELD.match(text)
    if match:
        what = match["what"]
        text = f"{match['field']}: {what[0].lower()}{what[1:]}"
    return text


def _jsonl_rows(path: Path) -> Iterator[tuple[int, ApplicationRow | str]]:
    decoder = msgspec.json.Decoder(ApplicationRow)
    with path.open("rb") as lines:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                yield number, decoder.decode(line)
            except (msgspec.ValidationError, msgspec.DecodeError) as exc:
                yield number, _reason(exc)


def _csv_rows(path: Path) -> Iterator[tuple[int, ApplicationRow | str]]:
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        header = reader.fieldnames or []
        unknown = [name for name in header if name not in COLUMNS]
        missing = [name for name in COLUMNS if name not in header and name not in OPTIONAL_COLUMNS]
        if unknown or missing:
            problems = [f"unknown column(s): {', '.join(unknown)}"] if unknown else []
            problems += [f"missing column(s): {', '.join(missing)}"] if missing else []
            yield 1, "; ".join(problems) + f" (expected: {', '.join(COLUMNS)})"
            return
        for record in reader:
            if None in record:
                yield reader.line_num, "more cells than the header has columns"
                continue
            cleaned = {key: value for key, value in record.items() if value != ""}
            try:
                yield reader.line_num, msgspec.convert(cleaned, ApplicationRow, strict=False)
            except msgspec.ValidationError as exc:
                yield reader.line_num, _reason(exc)


def _reader(path: Path) -> Callable[[Path], Iterator[tuple[int, ApplicationRow | str]]]:
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return _csv_rows
    if suffix in {".jsonl", ".ndjson"}:
        return _jsonl_rows
    raise BadRequest(f"{path.name}: unknown file type {suffix!r}; use .csv or .jsonl")


def read_applications(path: Path) -> list[tuple[str, PersonalValues]]:
    """Every row of the file as (id, stored values), or `ImportRejected` naming each bad
    row (also a repeated id within the file)."""
    if not path.is_file():
        raise BadRequest(f"{path}: no such file")
    rows: list[tuple[str, PersonalValues]] = []
    problems: list[tuple[int, str]] = []
    first_seen: dict[str, int] = {}
    try:
        for line, row in _reader(path)(path):
            if isinstance(row, str):
                problems.append((line, row))
            elif row.id in first_seen:
                problems.append((line, f"id {row.id} repeats line {first_seen[row.id]}"))
            else:
                first_seen[row.id] = line
                rows.append((row.id, row.values()))
    except UnicodeDecodeError as exc:
        raise BadRequest(f"{path.name}: not UTF-8 text ({exc.reason})") from exc
    except csv.Error as exc:
        raise BadRequest(f"{path.name}: not a readable CSV file ({exc})") from exc
    if problems:
        raise ImportRejected(problems)
    if not rows:
        raise BadRequest(f"{path.name}: no applications in the file")
    return rows
