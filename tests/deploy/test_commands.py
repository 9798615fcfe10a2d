"""Every process the deployment starts is a real ``touchstream`` command line: compose
services, Kubernetes containers and the image's default command."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

from tests.deploy.deployment import (
    ROOT,
    CommandError,
    all_containers,
    exec_form,
    resolve,
)

ENTRY_POINT = Path(sys.executable).with_name("touchstream")


def test_every_container_runs_a_real_command() -> None:
    containers = all_containers()
    assert {c.where.split(" ")[0] for c in containers} == {"docker-compose.yml", "deploy/k8s"}
    problems = []
    for container in containers:
        try:
            invocation = resolve(container.argv)
        except CommandError as error:
            problems.append(f"{container.where}: {error}")
            continue
        if not invocation.path:
            problems.append(
                f"{container.where}: `touchstream {' '.join(container.argv)}` runs nothing"
            )
    assert not problems, "\n".join(problems)


def test_the_image_runs_the_touchstream_entry_point() -> None:
    assert exec_form("ENTRYPOINT") == ["touchstream"]
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["touchstream"] == "services.cli:main"
    resolve(exec_form("CMD"))  # the default command, when a container is given none


def test_the_entry_point_knows_every_deployed_command() -> None:
    """Through the installed console script, as the image runs it: the commands are there
    however ``main`` loads them, not only when a test imports every module."""
    assert ENTRY_POINT.exists(), f"{ENTRY_POINT}: the touchstream console script is not installed"
    paths = sorted({resolve(c.argv).path for c in all_containers()})
    for path in paths:
        result = subprocess.run(
            [str(ENTRY_POINT), *path, "--help"],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert result.returncode == 0, f"touchstream {' '.join(path)} --help:\n{result.stderr}"
