"""How the benchmarks hand over their numbers: printed, and written where `--out` says, with
the machine they were measured on (benchmarks/results/ keeps them in the repo)."""

from __future__ import annotations

import json
import os
import platform
from pathlib import Path
from typing import Any


def machine_summary() -> str:
    return f"{platform.machine()}, {os.cpu_count()} cores, {platform.python_version()}"


def print_and_save(record: dict[str, Any], out: Path | None) -> None:
    print(json.dumps(record, indent=2))
    if out:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(record, indent=2) + "\n")
