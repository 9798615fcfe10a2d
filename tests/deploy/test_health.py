"""Health checks: the API's are GETs of real routes that need no token, on the port the API
listens on; the workers' look for the ready marker a worker writes; every long-running
process has one."""

from __future__ import annotations

import fnmatch
import re
from pathlib import Path

from fastapi.testclient import TestClient

from services.api.app import create_app
from services.settings import load_settings
from services.worker.app import ready_marker
from tests.deploy.deployment import Container, all_containers, load_settings_of, resolve

MARKER_GLOB = re.compile(r"(/\S*\.ready)\b")


def _runs(container: Container) -> tuple[str, ...]:
    return resolve(container.argv).path


def test_every_long_running_process_has_a_health_check() -> None:
    problems = []
    for container in all_containers():
        path, kind = _runs(container), container.where.split(" ")[0]
        if path == ("api",):
            if not container.http_checks:
                problems.append(f"{container.where}: the API has no HTTP check")
            if kind == "deploy/k8s":
                for probe in ("readinessProbe", "livenessProbe"):
                    if "httpGet" not in container.raw.get(probe, {}):
                        problems.append(f"{container.where}: no HTTP {probe}")
        elif path == ("worker",):
            if container.http_checks:
                problems.append(f"{container.where}: a worker serves no HTTP")
            if not container.shell_checks:
                problems.append(f"{container.where}: no readiness check")
            if kind == "deploy/k8s" and "exec" not in container.raw.get("readinessProbe", {}):
                problems.append(f"{container.where}: no readinessProbe")
    assert not problems, "\n".join(problems)


def test_api_checks_get_real_routes_without_a_token(tmp_path: Path) -> None:
    checked = [c for c in all_containers() if c.http_checks]
    assert checked, "no HTTP health check anywhere"
    settings = load_settings(data_dir=tmp_path, broker_url="127.0.0.1:9")  # no broker there
    app = create_app(settings, settings.broker_url, watch_dlq=False)
    problems: list[str] = []
    answers: dict[str, int] = {}
    with TestClient(app) as client:
        for container in checked:
            invocation = resolve(container.argv)
            if invocation.path != ("api",):
                problems.append(f"{container.where}: an HTTP check on `{' '.join(container.argv)}`")
                continue
            port = invocation.params.get("port") or load_settings_of(container).api_port
            for check in container.http_checks:
                if check.port != port:
                    problems.append(f"{container.where}: checks port {check.port}, API on {port}")
                if check.path not in answers:
                    answers[check.path] = client.get(check.path).status_code
                status = answers[check.path]
                # 503 is /ready's answer while the broker is away; 401, 403, 404, 405 mean the
                # check can never pass.
                if status not in (200, 503):
                    problems.append(f"{container.where}: GET {check.path} answers {status}")
    assert not problems, "\n".join(problems)


def test_worker_checks_look_for_the_ready_marker() -> None:
    workers = [c for c in all_containers() if _runs(c) == ("worker",)]
    assert workers, "no `touchstream worker` anywhere"
    problems = []
    for worker in workers:
        settings = load_settings_of(worker)
        globs = [g for text in worker.shell_checks for g in MARKER_GLOB.findall(text)]
        for pid in (1, 4242):
            marker = str(ready_marker(settings, pid=pid))
            if not any(fnmatch.fnmatchcase(marker, g) for g in globs):
                problems.append(f"{worker.where}: its checks {globs} miss the marker {marker}")
    assert not problems, "\n".join(problems)
