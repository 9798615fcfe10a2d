"""What every benchmark records: the machine it ran on and where its result goes."""

from __future__ import annotations

import json
import os
import platform
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil

ROOT = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).resolve().parent / "results"


def machine() -> dict[str, Any]:
    return {
        "cpus": os.cpu_count(),
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def write_result(name: str, result: dict[str, Any]) -> Path:
    """Write ``result`` (with ``when`` and ``machine`` added) to results/<name>-<UTC time>.json."""
    now = datetime.now(UTC)
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}-{now:%Y%m%dT%H%M%SZ}.json"
    record = {"benchmark": name, "when": now.isoformat(timespec="seconds"), "machine": machine()}
    path.write_text(json.dumps({**record, **result}, indent=2) + "\n")
    return path


def code_version() -> str:
    """The commit the services ran at, ``+changes`` if services/, schemas/ or journey_maps/
    differ from it."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
        ).stdout.strip()
        changed = subprocess.run(
            [
                "git",
                "--no-optional-locks",
                "status",
                "--porcelain",
                "services",
                "schemas",
                "journey_maps",
            ],
            cwd=ROOT,
            capture_output=True,
            text=True,
        ).stdout.strip()
    except OSError:
        return "unknown"
    return f"{head}+changes" if changed else head
