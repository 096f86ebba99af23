"""The results store: ``runs.csv``, one row per finished run, never a row under the wrong settings.

Columns (:data:`COLUMNS`): the run's identity -- method, W, K, L, seed, the results version and one
column per setting of any method (empty where a method has no such setting) -- then its results.
A row is matched to a run of the current spec by its whole identity, so rerunning with other
settings adds new rows beside the old ones, and pandas can group by any setting. A ``runs.csv``
whose header is not :data:`COLUMNS` (written by another version of mazejax) is refused.

Rows are appended and fsync'ed as each chunk finishes; a torn last line (SIGKILL mid-write) is cut
off on the next read, so no run is lost twice, duplicated or corrupted. With several processes each
writes ``runs.part<p>.csv`` and process 0 merges them into ``runs.csv``.
"""

from __future__ import annotations

import csv
import io
import math
import os
from pathlib import Path

from mazejax.sweep import methods
from mazejax.sweep.spec import Run

IDENTITY = ("method", "W", "K", "L", "seed", "version")
RESULTS = ("hitting_time", "mc_mean", "mc_stderr", "success_rate", "steps_to_5pct", "a", "b", "c", "d")
SETTINGS = tuple(methods.setting_names())
COLUMNS = IDENTITY + SETTINGS + RESULTS


def format_value(value) -> str:
    """A setting or result as a CSV cell: ``true``/``false``, ints, ``repr`` of floats, ``none``,
    strings as they are; NaN results as an empty cell."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "none"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return "" if math.isnan(value) else repr(value)
    return str(value)


def row_identity(row: dict) -> tuple:
    """The identity of a CSV row (strings), comparable with :func:`run_identity`."""
    params = methods.get(row["method"]).params if row["method"] in methods.METHODS else {}
    return tuple(row[c] for c in IDENTITY) + tuple((n, row[n]) for n in sorted(params))


def run_identity(run: Run) -> tuple:
    """The identity of a run as the strings its row holds."""
    return (run.method, str(run.W), str(run.K), str(run.L), str(run.seed), run.version) + tuple(
        (n, format_value(v)) for n, v in run.settings
    )


def run_row(run: Run, results: dict) -> dict:
    """The CSV row of a finished run: identity, settings and formatted results."""
    row = dict.fromkeys(COLUMNS, "")
    row.update({"method": run.method, "W": run.W, "K": run.K, "L": run.L, "seed": run.seed, "version": run.version})
    row.update({n: format_value(v) for n, v in run.settings})
    row.update({c: format_value(float(results[c])) for c in RESULTS if c in results})
    return row


def read_rows(path: Path) -> list[dict]:
    """Complete rows of a runs CSV (strings); a torn last line (no newline) is cut off the file.

    Raises ValueError if the header is not :data:`COLUMNS`.
    """
    path = Path(path)
    if not path.exists():
        return []
    data = path.read_bytes()
    if data and not data.endswith(b"\n"):
        data = data[: data.rfind(b"\n") + 1]
        with open(path, "r+b") as f:
            f.truncate(len(data))
    reader = csv.DictReader(io.StringIO(data.decode()))
    if reader.fieldnames is not None and tuple(reader.fieldnames) != COLUMNS:
        missing = [c for c in COLUMNS if c not in reader.fieldnames]
        extra = [c for c in reader.fieldnames if c not in COLUMNS]
        raise ValueError(
            f"{path} was written by another version of mazejax and cannot be matched to this sweep's runs "
            f"(missing columns: {', '.join(missing) or 'none'}; unknown columns: {', '.join(extra) or 'none'}); "
            "use a new --out folder"
        )
    return [r for r in reader if None not in r.values() and len(r) == len(COLUMNS)]


def write_csv(path, rows: list[dict], columns=None, *, append: bool = False) -> None:
    """Write (or append) ``rows`` to a CSV with one write and an fsync; a header if the file is new.

    The one CSV writer of the package (runs, tables, reproduction data). ``columns`` default: the
    keys of the first row.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    columns = list(columns or (rows[0] if rows else []))
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n", extrasaction="ignore")
    if not append or not path.exists() or path.stat().st_size == 0:
        writer.writeheader()
    writer.writerows(rows)
    flags = os.O_WRONLY | os.O_CREAT | (os.O_APPEND if append else os.O_TRUNC)
    fd = os.open(path, flags, 0o644)
    try:
        os.write(fd, buffer.getvalue().encode())
        os.fsync(fd)
    finally:
        os.close(fd)


class Store:
    """``DIR/runs.csv`` (or this process's part of it) of a sweep folder."""

    def __init__(self, folder, process: int = 0, count: int = 1):
        self.folder = Path(folder)
        if self.folder.exists() and not self.folder.is_dir():
            raise ValueError(f"--out {self.folder} is a file, not a folder; name a folder for the sweep's results")
        self.folder.mkdir(parents=True, exist_ok=True)
        self.table = self.folder / "runs.csv"
        self.part = self.table if count == 1 else self.folder / f"runs.part{process}.csv"
        self.done = {row_identity(r) for p in [self.table, *self.folder.glob("runs.part*.csv")] for r in read_rows(p)}

    def finished(self, run: Run) -> bool:
        return run_identity(run) in self.done

    def append(self, rows: list[dict]) -> None:
        write_csv(self.part, rows, COLUMNS, append=True)

    def merge(self, order: list[Run]) -> None:
        """Merge every part into ``runs.csv`` (process 0, after all processes finished)."""
        rows = {row_identity(r): r for p in [self.table, *sorted(self.folder.glob("runs.part*.csv"))] for r in read_rows(p)}
        rank = {run_identity(run): i for i, run in enumerate(order)}
        merged = sorted(rows.values(), key=lambda r: rank.get(row_identity(r), len(rank)))
        tmp = self.folder / "runs.csv.tmp"
        write_csv(tmp, merged, COLUMNS)
        os.replace(tmp, self.table)
        for part in self.folder.glob("runs.part*.csv"):
            part.unlink()


def read_runs(path) -> list[dict]:
    """Rows of a ``runs.csv`` with numbers parsed: identity ints, results floats (empty -> NaN),
    settings as written (strings)."""
    rows = []
    for row in read_rows(Path(path)):
        parsed = dict(row)
        for column in ("W", "K", "L", "seed"):
            parsed[column] = int(row[column])
        for column in RESULTS:
            parsed[column] = float(row[column]) if row[column] != "" else float("nan")
        rows.append(parsed)
    return rows


__all__ = ["COLUMNS", "IDENTITY", "RESULTS", "SETTINGS", "Store", "format_value", "read_rows", "read_runs",
           "row_identity", "run_identity", "run_row", "write_csv"]
