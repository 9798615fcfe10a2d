"""The dashboard: server-rendered pages for CX teams and operations, served by the API under
``/ui`` (docs/dashboard.md)."""

from services.dashboard.routes import dashboard_router

__all__ = ["dashboard_router"]
