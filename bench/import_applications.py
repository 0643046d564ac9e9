"""Import the real backlog's size (490,000 applications) through the operator CLI.

    .venv/bin/python bench/import_applications.py [--rows N] [--format csv|jsonl]

Generates a file of synthetic applications, then times `nexus-interview applications
import` on a fresh SQLite database (first import) and again on the same file (the
idempotent re-import). Prints rows per second beside the issue's target (490,000 rows in
60 s, i.e. 8,167 rows/s). Never fails on timing.
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import subprocess
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

from server.importer import COLUMNS

TARGET_ROWS, TARGET_SECONDS = 490_000, 60.0


def synthetic_rows(count: int) -> list[dict[str, str]]:
    rng = random.Random(7)
    rows = []
    for n in range(count):
        renewal = n % 3 == 0
        applied = date(2020, 3, 1) + timedelta(days=rng.randrange(1000))
        rows.append(
            {
                "id": f"{'FT' if n % 5 == 0 else 'NX'}-{n:08d}",
                "program": "FAST" if n % 5 == 0 else "NEXUS",
                "application_type": "renewal" if renewal else "new",
                "surname": rng.choice(["Tremblay", "Smith", "Côté", "Garcia", "Nguyen"]),
                "given_names": rng.choice(["Émilie", "James", "Olivier", "Maria", "Wei"]),
                "date_of_birth": (
                    date(1940, 1, 1) + timedelta(days=rng.randrange(25000))
                ).isoformat(),
                "citizenship": rng.choice(["CAN", "USA"]),
                "email": f"applicant{n}@example.org",
                "applied_on": applied.isoformat(),
                "card_expiry": (applied + timedelta(days=300)).isoformat() if renewal else "",
            }
        )
    return rows


def write(path: Path, rows: list[dict[str, str]]) -> None:
    with path.open("w", newline="", encoding="utf-8") as handle:
        if path.suffix == ".csv":
            writer = csv.DictWriter(handle, fieldnames=list(COLUMNS))
            writer.writeheader()
            writer.writerows(rows)
        else:
            for row in rows:
                handle.write(json.dumps({k: v for k, v in row.items() if v}) + "\n")


def timed_import(path: Path, data_dir: Path) -> float:
    command = [
        sys.executable,
        "-m",
        "server.cli",
        "--data-dir",
        str(data_dir),
        "applications",
        "import",
        str(path),
    ]
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        sys.exit(f"import failed: {done.stderr}")
    print(f"    {done.stdout.strip()}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=TARGET_ROWS)
    parser.add_argument("--format", choices=["csv", "jsonl"], default="csv")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / f"applications.{args.format}"
        write(path, synthetic_rows(args.rows))
        size = path.stat().st_size / 1e6
        print(f"{args.rows:,} rows, {args.format}, {size:.0f} MB")
        target_rate = TARGET_ROWS / TARGET_SECONDS
        for label in ("first import", "re-import (idempotent)"):
            seconds = timed_import(path, Path(scratch) / "data")
            rate = args.rows / seconds
            print(
                f"{label:>24}: {seconds:6.1f} s  {rate:9,.0f} rows/s  "
                f"({rate / target_rate:.1f}x the target of {target_rate:,.0f} rows/s)"
            )


if __name__ == "__main__":
    main()
