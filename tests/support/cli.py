"""Drive the ``touchstream`` console script as a user would, in a sandboxed environment."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil

TOUCHSTREAM = str(Path(sys.executable).with_name("touchstream"))


def cli_env(data_dir: Path, **overrides: str) -> dict[str, str]:
    """The caller's environment without TOUCHSTREAM_* settings, plus a private data dir and
    free ports, so a test never meets another stack."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOUCHSTREAM_")}
    env.update(
        TOUCHSTREAM_DATA_DIR=str(data_dir),
        TOUCHSTREAM_EMBEDDED_BROKER_PORT="0",
        TOUCHSTREAM_API_PORT="0",
        TOUCHSTREAM_CONSUMER_SESSION_TIMEOUT="6",
        COLUMNS="200",
    )
    env.update(overrides)
    return env


def run_cli(
    *args: str, env: dict[str, str], timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [TOUCHSTREAM, *args], env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


class Foreground:
    """A long-running command (``up``, ``demo``) whose output is read line by line."""

    def __init__(self, *args: str, env: dict[str, str]) -> None:
        self.proc = subprocess.Popen(
            [TOUCHSTREAM, *args],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._queue.put(line)
        self._queue.put(None)

    @property
    def output(self) -> str:
        return "".join(self.lines)

    def wait_for(self, text: str, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.output:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"{text!r} not printed within {timeout}s:\n{self.output}")
            try:
                line = self._queue.get(timeout=remaining)
            except queue.Empty:
                continue
            if line is None:
                raise AssertionError(f"exited ({self.proc.wait()}) before {text!r}:\n{self.output}")
            self.lines.append(line)

    def descendants(self) -> list[psutil.Process]:
        return psutil.Process(self.proc.pid).children(recursive=True)

    def signal(self, signum: int = signal.SIGTERM) -> None:
        self.proc.send_signal(signum)

    def finish(self, timeout: float = 90) -> int:
        code = self.proc.wait(timeout)
        while (line := self._queue.get(timeout=5)) is not None:
            self.lines.append(line)
        assert self.proc.stdout is not None
        self.proc.stdout.close()
        return code


def gone(pids: list[int], timeout: float = 30) -> list[int]:
    """The pids still alive (not zombies) after waiting up to ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        alive = [pid for pid in pids if _alive(pid)]
        if not alive or time.monotonic() > deadline:
            return alive
        time.sleep(0.2)


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def processes_of(data_dir: Path) -> list[psutil.Process]:
    """Live processes whose environment names this data dir: whatever a stack left behind."""
    found = []
    for proc in psutil.process_iter():
        try:
            if proc.environ().get("TOUCHSTREAM_DATA_DIR") == str(data_dir) and _alive(proc.pid):
                found.append(proc)
        except (psutil.AccessDenied, psutil.NoSuchProcess, psutil.ZombieProcess):
            continue
    return found
