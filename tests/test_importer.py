from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

import pytest

from common.errors import BadRequest, ImportRejected
from server import operator
from server.importer import COLUMNS, read_applications
from server.store import Store
from server.types import ApplicationStatus

GOOD = {
    "id": "NX-0001",
    "program": "NEXUS",
    "application_type": "new",
    "surname": "Tremblay",
    "given_names": "Émilie",
    "date_of_birth": "1980-05-17",
    "citizenship": "CAN",
    "email": "emilie@example.org",
    "applied_on": "2022-06-01",
    "card_expiry": "",
}
RENEWAL = {
    **GOOD,
    "id": "FT-0002",
    "program": "FAST",
    "application_type": "renewal",
    "card_expiry": "2023-01-31",
}


def write_csv(path: Path, rows: list[dict[str, str]], header: tuple[str, ...] = COLUMNS) -> Path:
    lines = [",".join(header)] + [",".join(row.get(c, "") for c in header) for row in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def write_jsonl(path: Path, rows: Sequence[Mapping[str, object]]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


def test_reads_csv_and_jsonl_alike(tmp_path: Path) -> None:
    from_csv = read_applications(write_csv(tmp_path / "a.csv", [GOOD, RENEWAL]))
    jsonl_rows = [{k: v for k, v in row.items() if v} for row in (GOOD, RENEWAL)]
    from_jsonl = read_applications(write_jsonl(tmp_path / "a.jsonl", jsonl_rows))
    assert from_csv == from_jsonl
    assert from_csv[1][1][COLUMNS.index("card_expiry") - 1] == "2023-01-31"


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"program": "GLOBAL"}, "program: invalid enum value 'GLOBAL'"),
        ({"application_type": "renewal"}, "a renewal needs card_expiry"),
        ({"card_expiry": "2030-01-01"}, "a new application has no card_expiry"),
        ({"date_of_birth": "1980-02-30"}, "date_of_birth: invalid rfc3339 encoded date"),
        ({"date_of_birth": "2023-01-01"}, "date_of_birth must be before applied_on"),
        ({"citizenship": "Canada"}, "citizenship: expected `str` matching regex"),
        ({"email": "not-an-email"}, "email: expected `str` matching regex"),
        ({"surname": ""}, "object missing required field `surname`"),
        ({"id": "x"}, "id: expected `str` matching regex"),
        ({"language": "de"}, "language must be en or fr (English, French), or empty when not"),
        ({"time_zone": "Toronto"}, "time_zone 'Toronto' is not an IANA time zone name"),
        ({"time_zone": "../etc/passwd"}, "is not an IANA time zone name"),
    ],
)
def test_each_kind_of_bad_row_is_named(tmp_path: Path, change: dict[str, str], reason: str) -> None:
    path = write_csv(tmp_path / "a.csv", [{**GOOD, **change}])
    with pytest.raises(ImportRejected) as caught:
        read_applications(path)
    assert caught.value.problems == [(2, caught.value.problems[0][1])]
    assert reason.lower() in caught.value.problems[0][1].lower()


def test_every_bad_row_is_reported_with_its_line(tmp_path: Path) -> None:
    rows = [
        GOOD,
        {**GOOD, "id": "NX-0002", "program": "X"},
        RENEWAL,
        {**GOOD, "id": "NX-0004", "email": "bad"},
        {**GOOD},
    ]
    with pytest.raises(ImportRejected) as caught:
        read_applications(write_csv(tmp_path / "a.csv", rows))
    lines = [line for line, _ in caught.value.problems]
    assert lines == [3, 5, 6]
    assert "id NX-0001 repeats line 2" in caught.value.problems[2][1]
    assert "line 3:" in caught.value.message and "nothing was imported" in caught.value.message


def test_jsonl_reports_broken_json_unknown_fields_and_wrong_types(tmp_path: Path) -> None:
    path = tmp_path / "a.jsonl"
    path.write_text(
        json.dumps({k: v for k, v in GOOD.items() if v})
        + "\n"
        + '{"id": "NX-0002",\n'
        + json.dumps({**{k: v for k, v in GOOD.items() if v}, "id": "NX-0003", "ssn": 1})
        + "\n"
        + json.dumps({**{k: v for k, v in GOOD.items() if v}, "id": "NX-0004", "surname": 7})
        + "\n",
        encoding="utf-8",
    )
    with pytest.raises(ImportRejected) as caught:
        read_applications(path)
    problems = dict(caught.value.problems)
    assert set(problems) == {2, 3, 4}
    assert "truncated" in problems[2] or "malformed" in problems[2]
    assert "unknown field `ssn`" in problems[3]
    assert "surname: expected `str`, got `int`" in problems[4]


def test_csv_header_must_match(tmp_path: Path) -> None:
    path = write_csv(
        tmp_path / "a.csv", [GOOD], header=(*(c for c in COLUMNS if c != "applied_on"), "nickname")
    )
    with pytest.raises(
        ImportRejected, match=r"unknown column.*nickname.*missing column.*applied_on"
    ):
        read_applications(path)


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("a.txt", b"x", "unknown file type '.txt'"),
        ("a.csv", b"\xff\xfe\x00bad", "not UTF-8"),
        ("a.jsonl", b"\n\n", "no applications"),
    ],
)
def test_unreadable_files_get_a_clear_error(
    tmp_path: Path, name: str, content: bytes, message: str
) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(BadRequest, match=message):
        read_applications(path)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(BadRequest, match="no such file"):
        read_applications(tmp_path / "nope.csv")


async def test_a_file_with_a_bad_row_imports_nothing(store: Store, tmp_path: Path) -> None:
    path = write_csv(tmp_path / "a.csv", [GOOD, {**RENEWAL, "card_expiry": ""}])
    with pytest.raises(ImportRejected):
        await operator.import_applications(store, path)
    assert await store.applications.count() == 0


async def test_reimporting_is_idempotent_and_updates_changed_rows(
    store: Store, tmp_path: Path
) -> None:
    path = write_csv(tmp_path / "a.csv", [GOOD, RENEWAL])
    first = await operator.import_applications(store, path)
    assert (first.inserted, first.updated, first.unchanged) == (2, 0, 0)
    again = await operator.import_applications(store, path)
    assert (again.inserted, again.updated, again.unchanged) == (0, 0, 2)
    assert len(await store.applications.history("NX-0001")) == 1

    changed = write_csv(tmp_path / "b.csv", [{**GOOD, "email": "new@example.org"}, RENEWAL])
    third = await operator.import_applications(store, changed)
    assert (third.inserted, third.updated, third.unchanged) == (0, 1, 1)
    application = await store.applications.get("NX-0001")
    assert application.email == "new@example.org"
    assert application.status is ApplicationStatus.PENDING


async def test_progress_is_reported_up_to_the_total(store: Store, tmp_path: Path) -> None:
    rows = [{**GOOD, "id": f"NX-{n:04d}"} for n in range(50)]
    seen: list[tuple[int, int]] = []
    await operator.import_applications(
        store,
        write_csv(tmp_path / "a.csv", rows),
        lambda stored, total: seen.append((stored, total)),
    )
    assert seen[0] == (0, 50)
    assert sum(stored for stored, _ in seen) == 50


async def test_a_missing_or_blank_language_is_stored_as_not_known(
    store: Store, tmp_path: Path
) -> None:
    without = tuple(c for c in COLUMNS if c not in ("language", "time_zone"))
    await operator.import_applications(store, write_csv(tmp_path / "a.csv", [GOOD], without))
    plain = await store.applications.get("NX-0001")
    assert (plain.language, plain.time_zone) == (None, None)
    blank = {**RENEWAL, "language": "  "}
    await operator.import_applications(store, write_csv(tmp_path / "b.csv", [blank]))
    assert (await store.applications.get("FT-0002")).language is None
    from_jsonl = {**{k: v for k, v in GOOD.items() if v}, "id": "NX-0003", "language": None}
    await operator.import_applications(store, write_jsonl(tmp_path / "c.jsonl", [from_jsonl]))
    assert (await store.applications.get("NX-0003")).language is None


@pytest.mark.parametrize(
    ("given", "stored"),
    [("FR ", "fr"), (" en", "en"), ("French", "fr"), ("Français", "fr"), ("ENGLISH", "en")],
)
async def test_a_known_language_is_stored_as_its_code(
    store: Store, tmp_path: Path, given: str, stored: str
) -> None:
    chosen = {**RENEWAL, "language": given, "time_zone": "America/Vancouver"}
    await operator.import_applications(store, write_csv(tmp_path / "a.csv", [chosen]))
    renewal = await store.applications.get("FT-0002")
    assert (renewal.language, renewal.time_zone) == (stored, "America/Vancouver")


async def test_a_file_with_an_unknown_language_is_refused_by_row_and_imports_nothing(
    store: Store, tmp_path: Path
) -> None:
    rows = [GOOD, {**RENEWAL, "language": "Deutsch"}]
    with pytest.raises(ImportRejected) as caught:
        await operator.import_applications(store, write_csv(tmp_path / "a.csv", rows))
    assert caught.value.problems == [
        (
            3,
            "language must be en or fr (English, French), or empty when not known; not 'Deutsch'",
        )
    ]
    assert "line 3:" in caught.value.message
    assert await store.applications.count() == 0


async def test_reimporting_without_a_language_forgets_the_known_one(
    store: Store, tmp_path: Path
) -> None:
    """The file is the source of a known application's personal fields, language included."""
    await operator.import_applications(
        store, write_csv(tmp_path / "a.csv", [{**GOOD, "language": "fr"}])
    )
    again = await operator.import_applications(store, write_csv(tmp_path / "b.csv", [GOOD]))
    assert again.updated == 1
    assert (await store.applications.get("NX-0001")).language is None
