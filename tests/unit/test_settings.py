"""Settings: environment variables, validation messages and the generated reference page."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from services.cli.config import settings_reference
from services.settings import Settings, bootstrap_servers

ROOT = Path(__file__).resolve().parents[2]


def test_defaults_are_the_embedded_mode(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in Settings.model_fields:
        monkeypatch.delenv(f"TOUCHSTREAM_{name.upper()}", raising=False)
    settings = Settings()
    assert settings.broker_url is None
    assert settings.store_url().startswith("sqlite:///")
    assert settings.topics.raw == "touchpoints.raw"
    assert settings.topics.all() == (
        "touchpoints.raw",
        "touchpoints.valid",
        "touchpoints.resolved",
        "identity.merges",
        "touchpoints.dlq",
        "journey.transitions",
        "friction.flags",
    )


def test_environment_variables_use_the_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TOUCHSTREAM_BROKER_URL", "kafka://k1:9092")
    monkeypatch.setenv("TOUCHSTREAM_PARTITIONS", "12")
    monkeypatch.setenv("TOUCHSTREAM_TOPIC_PREFIX", "shop-eu.")
    monkeypatch.setenv("TOUCHSTREAM_DATABASE_URL", "postgresql+psycopg2://u:secret@db/ts")
    monkeypatch.setenv("TOUCHSTREAM_LOG_LEVEL", "info")
    settings = Settings()
    assert settings.partitions == 12
    assert settings.topics.dlq == "shop-eu.touchpoints.dlq"
    assert settings.log_level == "INFO"
    assert "secret" not in repr(settings)
    assert settings.store_url() == "postgresql+psycopg2://u:secret@db/ts"


def test_bad_values_name_the_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TOUCHSTREAM_PARTITIONS", "0")
    with pytest.raises(ValidationError, match="partitions"):
        Settings()


def test_settings_are_frozen() -> None:
    settings = Settings(partitions=3)
    with pytest.raises(ValidationError):
        settings.partitions = 4  # type: ignore[misc]


def test_to_env_round_trips() -> None:
    settings = Settings(broker_url="b:1", partitions=7, topic_prefix="x.", database_url="sqlite://")
    env = settings.to_env()
    assert env["TOUCHSTREAM_PARTITIONS"] == "7"
    assert env["TOUCHSTREAM_DATABASE_URL"] == "sqlite://"
    again = Settings.model_validate(
        {k.removeprefix("TOUCHSTREAM_").lower(): v for k, v in env.items()}
    )
    assert again.topics == settings.topics
    assert again.partitions == 7


@pytest.mark.parametrize(
    ("url", "servers"),
    [
        ("localhost:9092", ["localhost:9092"]),
        ("kafka://a:9092,b:9092", ["a:9092", "b:9092"]),
        ("kafka://a:9092;kafka://b:9093/", ["a:9092", "b:9093"]),
        (" a:1 , ", ["a:1"]),
    ],
)
def test_bootstrap_servers(url: str, servers: list[str]) -> None:
    assert bootstrap_servers(url) == servers


def test_every_setting_is_documented() -> None:
    for name, field in Settings.model_fields.items():
        assert field.description, f"{name} has no description"


def test_configuration_page_is_in_sync() -> None:
    page = (ROOT / "docs" / "configuration.md").read_text()
    assert page == settings_reference(), "docs/configuration.md is out of date: run `make docs`"
    for name in Settings.model_fields:
        assert f"`TOUCHSTREAM_{name.upper()}`" in page
