"""Every ``TOUCHSTREAM_*`` variable the deployment names is a setting of
:class:`services.settings.Settings`, and every container's values load."""

from __future__ import annotations

import re

from services.errors import ConfigurationError
from tests.deploy.deployment import (
    COMPOSE_FILE,
    DEPLOY_README,
    DOCKERFILE,
    K8S_DIR,
    ROOT,
    SETTING_NAMES,
    all_containers,
    config_maps,
    load_settings_of,
    touchstream_names,
)

VARIABLE = re.compile(r"\bTOUCHSTREAM_[A-Z0-9_]+\b")


def test_settings_are_derived_from_the_settings_class() -> None:
    assert "TOUCHSTREAM_BROKER_URL" in SETTING_NAMES
    assert "TOUCHSTREAM_TABLE_STORE" in SETTING_NAMES
    assert "TOUCHSTREAM_NO_SUCH_SETTING" not in SETTING_NAMES


def test_every_variable_named_in_the_deployment_is_a_setting() -> None:
    files = [COMPOSE_FILE, DOCKERFILE, DEPLOY_README, *sorted(K8S_DIR.glob("*.y*ml"))]
    problems = []
    for path in files:
        for number, line in enumerate(path.read_text().splitlines(), start=1):
            for name in VARIABLE.findall(line):
                if name not in SETTING_NAMES:
                    problems.append(f"{path.relative_to(ROOT)}:{number}: {name}")
    for container in all_containers():
        for name in sorted(touchstream_names(container.env) - SETTING_NAMES):
            problems.append(f"{container.where}: {name}")
    for name, data in config_maps().items():
        for key in sorted(touchstream_names(dict.fromkeys(data)) - SETTING_NAMES):
            problems.append(f"ConfigMap {name}: {key}")
    assert not problems, "not settings (docs/configuration.md lists them):\n" + "\n".join(problems)


def test_every_container_configuration_loads() -> None:
    problems = []
    for container in all_containers():
        try:
            load_settings_of(container)
        except ConfigurationError as error:
            problems.append(f"{container.where}: {error}")
    assert not problems, "\n".join(problems)
