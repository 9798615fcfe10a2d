"""Headless Chromium for browser tests, through Playwright, on the system's Chromium
(``make chromium`` installs it; Playwright's own browser download is not used).

A missing browser fails the test that needs it; it is never skipped (so also under CI=true)."""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Error, sync_playwright

__all__ = ["ARTIFACTS", "CHROMIUM", "chromium", "chromium_path", "keep_artifacts"]

CHROMIUM = "TOUCHSTREAM_CHROMIUM"  # a Chromium binary to use instead of the one on PATH
ARTIFACTS = "TOUCHSTREAM_TEST_ARTIFACTS"  # a directory to copy screenshots to
ARGS = (
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)


def chromium_path() -> str | None:
    """``TOUCHSTREAM_CHROMIUM``, else ``chromium`` or ``chromium-browser`` on PATH."""
    given = os.environ.get(CHROMIUM)
    if given:
        return given if Path(given).is_file() else None
    return shutil.which("chromium") or shutil.which("chromium-browser")


def _missing(why: str) -> None:
    ci = " (CI=true: a missing browser is a failure)" if os.environ.get("CI") == "true" else ""
    pytest.fail(
        f"headless Chromium could not be started{ci}: {why}. `make chromium` installs it "
        f"(as root with apt-get), or install Chromium yourself (Debian: sudo apt-get install "
        f"chromium) or set {CHROMIUM} to a Chromium binary.",
        pytrace=False,
    )


@contextmanager
def chromium() -> Iterator[Browser]:
    """A headless Chromium, closed afterwards."""
    path = chromium_path()
    if path is None:
        _missing(f"no Chromium binary ({CHROMIUM} unset or wrong, none on PATH)")
    with sync_playwright() as playwright:
        try:
            browser = playwright.chromium.launch(
                executable_path=path, headless=True, args=list(ARGS), timeout=30_000
            )
        except Error as error:
            _missing(str(error).splitlines()[0])
        try:
            yield browser
        finally:
            browser.close()


def keep_artifacts(source: Path, test_id: str) -> Path | None:
    """Copy ``source`` (a directory of screenshots) under ``$TOUCHSTREAM_TEST_ARTIFACTS``,
    in a folder named after the test; the copy's path, or None when the variable is unset."""
    root = os.environ.get(ARTIFACTS)
    if not root:
        return None
    target = Path(root) / re.sub(r"[^A-Za-z0-9._-]+", "_", test_id).strip("_")
    shutil.copytree(source, target, dirs_exist_ok=True)
    return target
