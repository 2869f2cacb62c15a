"""Writing a benchmark's results file."""

from __future__ import annotations

import json
import os
from pathlib import Path


def write_report(path: Path, report: dict) -> Path:
    """`report` as indented JSON at `path`, replaced in one step (a crash leaves the old file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    os.replace(temporary, path)
    return path
