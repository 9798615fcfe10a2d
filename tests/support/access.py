"""Login tokens for API tests: one static token per role, and clients that send them."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient
from pydantic import SecretStr

from services.api.app import create_app
from services.embedded.process import free_port
from services.settings import Settings

VIEWER_TOKEN = "test-viewer-token-0123456789"
OPERATOR_TOKEN = "test-operator-token-0123456789"
ADMIN_TOKEN = "test-admin-token-0123456789"
API_TOKENS = f"vera:viewer:{VIEWER_TOKEN},otto:operator:{OPERATOR_TOKEN},ada:admin:{ADMIN_TOKEN}"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def store_settings(store_url: str, tmp_path: Path, **changes: object) -> Settings:
    """Settings for an API over the store at ``store_url`` with the three static tokens."""
    return Settings(
        database_url=SecretStr(store_url),
        data_dir=tmp_path / "data",
        api_tokens=SecretStr(API_TOKENS),
        **changes,
    )


def api_client(
    settings: Settings, token: str | None = None, base_url: str = "http://testserver"
) -> TestClient:
    """An in-process client of the API for ``settings`` (no broker), sending ``token``."""
    app = create_app(settings, f"127.0.0.1:{free_port()}", watch_dlq=False)
    return TestClient(app, base_url=base_url, headers=bearer(token) if token else None)
