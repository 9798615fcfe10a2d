"""deploy/Dockerfile: pinned base images, a non-root user, the journey maps where the setting
points, and a build context that holds what it copies."""

from __future__ import annotations

import fnmatch
import re

from tests.deploy.deployment import (
    DOCKERFILE,
    DOCKERIGNORE,
    dockerfile_instructions,
    final_stage,
    image_env,
)

PINNED = re.compile(r"^[\w./-]+:\d+\.\d+\.\d+[\w.-]*$")  # name:MAJOR.MINOR.PATCH[-variant]


def test_base_images_are_pinned() -> None:
    images = [
        rest.split()[0]
        for kw, rest in dockerfile_instructions(DOCKERFILE.read_text())
        if kw == "FROM"
    ]
    assert images
    for image in images:
        assert PINNED.match(image), f"FROM {image}: pin a full version"


def test_the_image_runs_as_a_non_root_user() -> None:
    users = [rest for keyword, rest in final_stage() if keyword == "USER"]
    assert users, "the image runs as root"
    uid = users[-1].split(":")[0]
    assert uid.isdigit(), f"USER {users[-1]}: a numeric uid (Kubernetes checks runAsNonRoot)"
    assert int(uid) != 0, f"USER {users[-1]}: root"


def test_the_journey_maps_are_where_the_setting_points() -> None:
    """The package is installed into the image, not run from a checkout, so the shipped maps
    are only found through TOUCHSTREAM_JOURNEY_MAPS_DIR."""
    target = image_env().get("TOUCHSTREAM_JOURNEY_MAPS_DIR")
    assert target, "the image does not set TOUCHSTREAM_JOURNEY_MAPS_DIR"
    copies = [rest.split() for keyword, rest in final_stage() if keyword == "COPY"]
    assert ["journey_maps", target] in copies, f"no `COPY journey_maps {target}`"


def _ignored(name: str, patterns: list[str]) -> bool:
    """Whether the build context leaves out the top-level ``name`` (the last pattern that
    matches decides; ``!`` takes back)."""
    ignored = False
    for pattern in patterns:
        if fnmatch.fnmatchcase(name, pattern.removeprefix("!")):
            ignored = not pattern.startswith("!")
    return ignored


def test_the_build_context_holds_what_the_image_copies() -> None:
    patterns = [
        line.strip()
        for line in DOCKERIGNORE.read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    sources = [
        word.rstrip("/")
        for keyword, rest in dockerfile_instructions(DOCKERFILE.read_text())
        if keyword == "COPY" and not rest.startswith("--from")
        for word in rest.split()[:-1]
    ]
    assert "services" in sources
    for source in sources:
        assert not _ignored(source.split("/")[0], patterns), f"COPY {source}: left out"
    for private in (".venv", ".git", ".touchstream", "tests"):
        assert _ignored(private, patterns), f"{private} goes into the build context"
