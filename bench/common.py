"""What every benchmark records: the machine it ran on and where its result goes."""

from __future__ import annotations

import json
import os
import platform
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil

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
