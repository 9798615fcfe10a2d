"""docker-compose.yml: ``docker-compose config`` accepts it, it has no default password, the
migration runs first and every start waits on health, and its images are pinned."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from typing import Any

import pytest
import yaml

from tests.deploy.deployment import (
    COMPOSE_FILE,
    ROOT,
    compose,
    compose_containers,
    is_touchstream_service,
    load_settings_of,
    project_version,
    resolve,
)

PASSWORD = "pw-of-the-deploy-test"
PINNED = re.compile(r"^[^:@\s]+:[^:\s]*\d[^:\s]*$")  # a tag with a version number in it


def docker_compose_config(password: str | None) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("docker-compose")
    if binary is None:
        pytest.fail(
            "docker-compose is not installed, so docker-compose.yml cannot be checked: "
            "`make docker-compose` installs it (Debian: apt-get install docker-compose)"
        )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("COMPOSE_", "POSTGRES_"))}
    if password is not None:
        env["POSTGRES_PASSWORD"] = password
    return subprocess.run(
        [binary, "--file", str(COMPOSE_FILE), "--project-directory", str(ROOT), "config"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_docker_compose_accepts_the_file() -> None:
    result = docker_compose_config(PASSWORD)
    assert result.returncode == 0, f"docker-compose config refused the file:\n{result.stderr}"
    resolved: dict[str, Any] = yaml.safe_load(result.stdout)
    assert set(resolved["services"]) == set(compose()["services"])
    urls = {
        name: service["environment"]["TOUCHSTREAM_DATABASE_URL"]
        for name, service in resolved["services"].items()
        if "TOUCHSTREAM_DATABASE_URL" in service.get("environment", {})
    }
    assert urls, "no service is given TOUCHSTREAM_DATABASE_URL"
    for name, url in urls.items():
        assert f":{PASSWORD}@postgres:" in url, f"{name}: the password does not reach {url!r}"


def test_there_is_no_default_password() -> None:
    result = docker_compose_config(password=None)
    assert result.returncode != 0, "docker-compose.yml starts without POSTGRES_PASSWORD"
    assert "POSTGRES_PASSWORD" in result.stderr


def test_migration_runs_first_and_every_start_waits_on_health() -> None:
    services: dict[str, dict[str, Any]] = compose()["services"]
    migrations = [c.name for c in compose_containers() if resolve(c.argv).path == ("db", "upgrade")]
    assert len(migrations) == 1, f"one service runs `touchstream db upgrade`, not {migrations}"
    migrate = migrations[0]
    assert services[migrate].get("restart", "no") == "no", "the migration must run once"
    problems = []
    for name, service in services.items():
        if name != migrate and "healthcheck" not in service:
            problems.append(f"{name}: no healthcheck")
        depends = service.get("depends_on", {})
        if isinstance(depends, list):
            problems.append(f"{name}: depends_on without conditions")
            continue
        for target, how in depends.items():
            condition = (how or {}).get("condition")
            if condition == "service_healthy" and "healthcheck" not in services[target]:
                problems.append(f"{name}: waits for {target} to be healthy; it has no check")
            elif condition == "service_completed_successfully" and target != migrate:
                problems.append(f"{name}: waits for {target} to complete; it is no one-shot")
            elif condition not in ("service_healthy", "service_completed_successfully"):
                problems.append(f"{name}: depends on {target} with condition {condition!r}")
        if is_touchstream_service(service) and name != migrate:
            condition = depends.get(migrate, {}).get("condition")
            if condition != "service_completed_successfully":
                problems.append(f"{name}: starts without waiting for {migrate} to complete")
    assert not problems, "\n".join(problems)


def test_images_are_pinned() -> None:
    problems = []
    for name, service in compose()["services"].items():
        image = str(service.get("image", ""))
        if not PINNED.match(image) or image.endswith(":latest"):
            problems.append(f"{name}: image {image!r} is not pinned to a version")
        if is_touchstream_service(service) and image.rpartition(":")[2] != project_version():
            problems.append(f"{name}: image {image!r} is not tagged {project_version()}")
    assert not problems, "\n".join(problems)


def test_workers_are_no_more_than_partitions() -> None:
    workers = [c for c in compose_containers() if resolve(c.argv).path == ("worker",)]
    assert workers, "docker-compose.yml runs no `touchstream worker`"
    for worker in workers:
        replicas = int(worker.raw.get("scale", worker.raw.get("deploy", {}).get("replicas", 1)))
        partitions = load_settings_of(worker).partitions
        assert 1 <= replicas <= partitions, (
            f"{worker.where}: {replicas} workers, {partitions} partitions"
        )
