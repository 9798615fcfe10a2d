"""Supervise the embedded stack: broker, topics, worker and API, stopped in reverse order."""

from __future__ import annotations

import os
import sys
import threading
import time
import urllib.request
from dataclasses import dataclass
from types import TracebackType

from services.embedded.broker import EmbeddedBroker
from services.embedded.process import ManagedProcess, free_port, port_in_use
from services.errors import EmbeddedStackError
from services.kafka import ensure_topics
from services.runstate import StackState, clear_state, write_state
from services.settings import Settings, env_name
from services.store.db import upgrade
from services.worker.app import ready_marker


@dataclass(frozen=True, slots=True)
class StackInfo:
    broker_url: str
    embedded_broker: bool
    api_url: str | None
    topics_created: dict[str, bool]
    processes: dict[str, int]


class EmbeddedStack:
    """Start with :meth:`start` (or ``with``); every child dies with this process."""

    def __init__(self, settings: Settings, *, with_api: bool = True) -> None:
        self.settings = settings
        self.with_api = with_api
        self.broker: EmbeddedBroker | None = None
        self.children: list[ManagedProcess] = []
        self.info: StackInfo | None = None

    def _child(self, name: str, command: str, env: dict[str, str]) -> ManagedProcess:
        argv = [sys.executable, "-m", "services.cli", command]
        child = ManagedProcess(name, argv, self.settings.log_dir / f"{name}.log", env)
        child.start()
        self.children.append(child)
        return child

    def _wait(self, child: ManagedProcess, what: str, ready: object) -> None:
        deadline = time.monotonic() + self.settings.startup_timeout
        while time.monotonic() < deadline:
            if not child.alive():
                raise EmbeddedStackError(
                    f"the {child.name} exited while starting (code {child.exit_code()}); "
                    f"its log {child.log_path} ends with:\n{child.tail()}"
                )
            if callable(ready) and ready():
                return
            time.sleep(0.1)
        raise EmbeddedStackError(
            f"the {child.name} did not become {what} within {self.settings.startup_timeout:.0f}s "
            f"(TOUCHSTREAM_STARTUP_TIMEOUT); its log {child.log_path} ends with:\n{child.tail()}"
        )

    def start(self) -> StackInfo:
        s = self.settings
        s.run_dir.mkdir(parents=True, exist_ok=True)
        try:
            upgrade(s.store_url())
            broker_url = s.broker_url
            if broker_url is None:
                self.broker = EmbeddedBroker(
                    s.embedded_broker_host, s.embedded_broker_port, s.log_dir / "broker.log"
                )
                self.broker.start(timeout=s.startup_timeout)
                broker_url = self.broker.url
            created = ensure_topics(s, broker_url)
            # the children run with exactly these settings (a command may have adjusted some)
            env = {**os.environ, **s.to_env(), env_name("broker_url"): broker_url}
            worker = self._child("worker", "worker", env)
            marker = ready_marker(s, worker.pid)
            self._wait(worker, "ready", marker.exists)
            api_url = None
            if self.with_api:
                port = s.api_port or free_port(s.api_host)
                if port_in_use(s.api_host, port):
                    raise EmbeddedStackError(
                        f"port {port} on {s.api_host} is already in use, so the API cannot "
                        "listen there; set TOUCHSTREAM_API_PORT to another port (0 = any free)."
                    )
                api_url = f"http://{s.api_host}:{port}"
                api = self._child("api", "api", {**env, env_name("api_port"): str(port)})
                self._wait(api, "healthy", lambda: _answers(f"{api_url}/health"))
        except BaseException:
            self.stop()
            raise
        processes = {"up": os.getpid()}
        if self.broker is not None:
            processes["broker"] = self.broker.process.pid
        processes.update({child.name: child.pid for child in self.children})
        self.info = StackInfo(broker_url, self.broker is not None, api_url, created, processes)
        write_state(
            s,
            StackState(
                pid=os.getpid(),
                broker_url=broker_url,
                embedded_broker=self.broker is not None,
                api_url=api_url,
                processes=processes,
            ),
        )
        return self.info

    def supervise(self, stop: threading.Event) -> None:
        """Block until ``stop`` is set; raise if a child dies on its own meanwhile."""
        while not stop.wait(0.5):
            for child in self._all():
                if not child.alive():
                    raise EmbeddedStackError(
                        f"the {child.name} exited unexpectedly (code {child.exit_code()}); "
                        f"its log {child.log_path} ends with:\n{child.tail()}"
                    )

    def _all(self) -> list[ManagedProcess]:
        return [*self.children, *([self.broker.process] if self.broker else [])]

    def stop(self) -> None:
        """Stop the API, then the worker (it commits its offsets), then the broker."""
        for child in reversed(self.children):
            child.stop()
        if self.broker is not None:
            self.broker.stop()
        clear_state(self.settings)

    def __enter__(self) -> StackInfo:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as response:  # noqa: S310 - our own http URL
            return bool(response.status == 200)
    except OSError:
        return False
