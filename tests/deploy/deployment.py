"""The deployment files as the tests see them: every Touchstream container of
``docker-compose.yml`` and ``deploy/k8s/`` with the arguments it gives the ``touchstream``
entry point, its environment (the image's ``ENV`` underneath) and its health checks."""

from __future__ import annotations

import contextlib
import importlib
import io
import json
import os
import pkgutil
import shlex
import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import typer.main
import yaml

import services.cli
from services.settings import ENV_PREFIX, Settings, env_name, load_settings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "deploy" / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
K8S_DIR = ROOT / "deploy" / "k8s"
DEPLOY_README = ROOT / "deploy" / "README.md"
WORKLOADS = ("Deployment", "StatefulSet", "Job", "DaemonSet", "CronJob")
SETTING_NAMES = frozenset(env_name(name) for name in Settings.model_fields)


@dataclass(frozen=True)
class HttpCheck:
    path: str
    port: int


@dataclass(frozen=True)
class Container:
    """One Touchstream container: ``argv`` follows the ``touchstream`` entry point; an ``env``
    value of None comes from a Secret (unknown here)."""

    where: str
    name: str
    argv: tuple[str, ...]
    env: Mapping[str, str | None]
    http_checks: tuple[HttpCheck, ...] = ()
    shell_checks: tuple[str, ...] = ()
    raw: Mapping[str, Any] = field(default_factory=dict)

    def known_env(self) -> dict[str, str]:
        return {k: v for k, v in self.env.items() if v is not None}


# --- the image -------------------------------------------------------------------------


def dockerfile_instructions(text: str) -> list[tuple[str, str]]:
    """``(INSTRUCTION, arguments)`` in order; continuation lines joined, comments dropped."""
    instructions: list[tuple[str, str]] = []
    pending = ""
    for line in text.splitlines():
        stripped = line.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        whole = pending + stripped
        pending = ""
        keyword, _, rest = whole.partition(" ")
        instructions.append((keyword.upper(), rest.strip()))
    return instructions


def final_stage() -> list[tuple[str, str]]:
    """The instructions of the Dockerfile's last stage (the image that runs)."""
    instructions = dockerfile_instructions(DOCKERFILE.read_text())
    start = max(i for i, (keyword, _) in enumerate(instructions) if keyword == "FROM")
    return instructions[start:]


def exec_form(instruction: str) -> list[str]:
    """The JSON array of the final stage's ENTRYPOINT or CMD (the shell form is refused)."""
    values = [rest for keyword, rest in final_stage() if keyword == instruction]
    assert values, f"deploy/Dockerfile has no {instruction}"
    parsed = json.loads(values[-1])
    assert isinstance(parsed, list), f"{instruction} must be an exec-form JSON array"
    return [str(item) for item in parsed]


def image_env() -> dict[str, str]:
    """The final stage's ``ENV KEY=VALUE ...`` variables."""
    env: dict[str, str] = {}
    for keyword, rest in final_stage():
        if keyword != "ENV":
            continue
        for item in shlex.split(rest):
            key, sep, value = item.partition("=")
            assert sep, f"ENV {rest!r}: use the KEY=VALUE form"
            env[key] = value
    return env


def project_version() -> str:
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    return str(version)


# --- the command line ------------------------------------------------------------------


def cli_group() -> Any:
    """The ``touchstream`` command with every command module loaded, as ``main`` loads them.
    (Typed ``Any``: Typer builds it on its own copy of click.)"""
    for module in pkgutil.iter_modules(services.cli.__path__):
        if module.name != "__main__":
            importlib.import_module(f"services.cli.{module.name}")
    return typer.main.get_command(services.cli.app)


class CommandError(Exception):
    """The arguments are not a command line ``touchstream`` accepts."""


@dataclass(frozen=True)
class Invocation:
    """What ``touchstream ARGV`` would run: the command's path and its parsed parameters
    (``path`` ends at a group when the arguments only ask for its help)."""

    path: tuple[str, ...]
    params: Mapping[str, Any]


def resolve(argv: tuple[str, ...] | list[str]) -> Invocation:
    """Parse ``argv`` as the ``touchstream`` entry point would, without running anything:
    unknown commands and options, bad or missing values raise :class:`CommandError`."""
    command = cli_group()
    parent = command.make_context("touchstream", [], resilient_parsing=True)
    args, path = list(argv), list[str]()
    shown = "touchstream " + " ".join(argv)
    while hasattr(command, "list_commands"):  # a group: the next word names a command
        if args == ["--help"]:
            return Invocation(tuple(path), {})
        if not args or args[0].startswith("-"):
            raise CommandError(f"`{shown}` names no command")
        sub = command.get_command(parent, args[0])
        if sub is None:
            raise CommandError(f"`{shown}`: no command {args[0]!r}")
        command, path = sub, [*path, args.pop(0)]
        if hasattr(command, "list_commands"):
            parent = command.make_context(path[-1], [], parent=parent, resilient_parsing=True)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            ctx = command.make_context(path[-1], args, parent=parent)
    except typer.Exit as done:  # --help prints the help and exits
        if done.exit_code != 0:
            raise CommandError(f"`{shown}` exits {done.exit_code}") from None
        return Invocation(tuple(path), {})
    except typer.TyperException as error:
        raise CommandError(f"`{shown}`: {error}") from None
    return Invocation(tuple(path), dict(ctx.params))


# --- docker-compose.yml ----------------------------------------------------------------


def compose() -> dict[str, Any]:
    loaded = yaml.safe_load(COMPOSE_FILE.read_text())
    assert isinstance(loaded, dict)
    return loaded


def is_touchstream_service(service: Mapping[str, Any]) -> bool:
    build = service.get("build")
    return isinstance(build, dict) and build.get("dockerfile") == "deploy/Dockerfile"


def _compose_env(service: Mapping[str, Any]) -> dict[str, str | None]:
    given = service.get("environment") or {}
    if isinstance(given, list):
        given = dict(item.split("=", 1) if "=" in item else (item, None) for item in given)
    return {str(k): None if v is None else str(v) for k, v in given.items()}


def _as_argv(value: Any) -> list[str]:
    return shlex.split(value) if isinstance(value, str) else [str(v) for v in value]


def _check_text(test: Any) -> str:
    """A compose health check's ``test`` as one text (exec and shell forms alike)."""
    parts = _as_argv(test) if not isinstance(test, str) else [test]
    return " ".join(p for p in parts if p not in ("CMD", "CMD-SHELL"))


def compose_containers() -> list[Container]:
    containers = []
    entrypoint, cmd, base_env = exec_form("ENTRYPOINT"), exec_form("CMD"), image_env()
    for name, service in compose()["services"].items():
        if not is_touchstream_service(service):
            continue
        where = f"docker-compose.yml service {name}"
        if "entrypoint" in service:
            assert _as_argv(service["entrypoint"]) == entrypoint, f"{where}: entrypoint"
        argv = _as_argv(service["command"]) if "command" in service else cmd
        check = service.get("healthcheck", {})
        text = _check_text(check["test"]) if "test" in check else ""
        http = tuple(HttpCheck(path, port) for path, port in urls_in(text))
        shells = (text,) if text and not http else ()
        env: dict[str, str | None] = {**base_env, **_compose_env(service)}
        containers.append(Container(where, name, tuple(argv), env, http, shells, service))
    return containers


def urls_in(text: str) -> Iterator[tuple[str, int]]:
    """``(path, port)`` of every ``http://host:port/path`` in a check's text."""
    for word in text.replace("'", " ").replace('"', " ").replace("(", " ").split():
        if word.startswith("http://"):
            host, _, path = word.removeprefix("http://").partition("/")
            port = int(host.rpartition(":")[2]) if ":" in host else 80
            yield "/" + path.split(",")[0], port


# --- deploy/k8s ------------------------------------------------------------------------


def k8s_documents() -> dict[Path, list[dict[str, Any]]]:
    """Every manifest file of deploy/k8s with its YAML documents (empty ones dropped)."""
    files = sorted(K8S_DIR.glob("*.yaml")) + sorted(K8S_DIR.glob("*.yml"))
    return {
        path: [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]
        for path in files
    }


def k8s_objects() -> list[dict[str, Any]]:
    return [doc for docs in k8s_documents().values() for doc in docs]


def pod_spec(obj: Mapping[str, Any]) -> dict[str, Any]:
    spec = obj["spec"]
    if obj["kind"] == "CronJob":
        spec = spec["jobTemplate"]["spec"]
    template: dict[str, Any] = spec["template"]
    return template


def config_maps() -> dict[str, dict[str, str]]:
    return {
        obj["metadata"]["name"]: {str(k): str(v) for k, v in (obj.get("data") or {}).items()}
        for obj in k8s_objects()
        if obj["kind"] == "ConfigMap"
    }


def _k8s_env(container: Mapping[str, Any], where: str) -> dict[str, str | None]:
    maps = config_maps()
    env: dict[str, str | None] = {}
    for source in container.get("envFrom", []):
        if "configMapRef" in source:
            name = source["configMapRef"]["name"]
            assert name in maps, f"{where}: envFrom names ConfigMap {name!r}, not in deploy/k8s"
            env.update(maps[name])
        else:
            raise AssertionError(f"{where}: envFrom {source}: name secret variables one by one")
    for item in container.get("env", []):
        source = item.get("valueFrom", {})
        if "configMapKeyRef" in source:
            ref = source["configMapKeyRef"]
            env[item["name"]] = maps[ref["name"]][ref["key"]]
        elif source:
            env[item["name"]] = None
        else:
            env[item["name"]] = str(item.get("value", ""))
    return env


def _port(container: Mapping[str, Any], port: int | str) -> int:
    if isinstance(port, int):
        return port
    for item in container.get("ports", []):
        if item.get("name") == port:
            return int(item["containerPort"])
    raise AssertionError(f"probe port {port!r} is not a named port of the container")


def k8s_containers() -> list[Container]:
    entrypoint, cmd, base_env = exec_form("ENTRYPOINT"), exec_form("CMD"), image_env()
    containers = []
    for obj in k8s_objects():
        if obj["kind"] not in WORKLOADS:
            continue
        spec = pod_spec(obj)["spec"]
        for container in [*spec.get("initContainers", []), *spec["containers"]]:
            where = (
                f"deploy/k8s {obj['kind']} {obj['metadata']['name']} container {container['name']}"
            )
            args = [str(a) for a in container.get("args", [])]
            if "command" in container:  # replaces ENTRYPOINT, and CMD with it
                command = [str(c) for c in container["command"]]
                assert command[: len(entrypoint)] == entrypoint, f"{where}: command {command}"
                argv = command[len(entrypoint) :] + args
            else:
                argv = args if "args" in container else cmd
            http, shells = [], []
            for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
                check = container.get(probe)
                if check and "httpGet" in check:
                    get = check["httpGet"]
                    http.append(HttpCheck(get["path"], _port(container, get["port"])))
                elif check and "exec" in check:
                    shells.append(" ".join(check["exec"]["command"]))
            env = {**base_env, **_k8s_env(container, where)}
            containers.append(
                Container(
                    where,
                    container["name"],
                    tuple(argv),
                    env,
                    tuple(http),
                    tuple(shells),
                    container,
                )
            )
    return containers


def load_settings_of(container: Container) -> Settings:
    """The settings the container's process would load from its environment (variables from a
    Secret left out); a bad value raises :class:`ConfigurationError`."""
    given = {k: v for k, v in container.known_env().items() if k.startswith(ENV_PREFIX)}
    saved = {k: v for k, v in os.environ.items() if k.startswith(ENV_PREFIX)}
    try:
        for name in saved:
            del os.environ[name]
        os.environ.update(given)
        return load_settings()
    finally:
        for name in given:
            os.environ.pop(name, None)
        os.environ.update(saved)


def all_containers() -> list[Container]:
    return compose_containers() + k8s_containers()


def touchstream_names(env: Mapping[str, str | None]) -> set[str]:
    return {name for name in env if name.startswith(ENV_PREFIX)}
