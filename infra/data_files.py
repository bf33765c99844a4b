"""The project's data files (infra/data/*.csv): facts with a source and date per row, read one way."""

from __future__ import annotations

import csv
from pathlib import Path

DATA_DIR = Path(__file__).parent / "data"


def data_rows(name: str) -> list[dict[str, str]]:
    """The rows of a data file (data/<name>), each with its source and date."""
    with open(DATA_DIR / name, newline="") as handle:
        return list(csv.DictReader(handle))
