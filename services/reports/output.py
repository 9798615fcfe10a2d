"""The report formats, their media types, and one entry point to render any of them."""

from __future__ import annotations

from collections.abc import Callable
from enum import StrEnum

from services.reports.friction import FrictionReport
from services.reports.html import as_html
from services.reports.render import as_csv, as_json, table_text

__all__ = ["MEDIA_TYPES", "ReportFormat", "render"]


class ReportFormat(StrEnum):
    table = "table"
    csv = "csv"
    json = "json"
    html = "html"


MEDIA_TYPES = {
    ReportFormat.table: "text/plain; charset=utf-8",
    ReportFormat.csv: "text/csv; charset=utf-8",
    ReportFormat.json: "application/json",
    ReportFormat.html: "text/html; charset=utf-8",
}

RENDERERS: dict[ReportFormat, Callable[[FrictionReport], str]] = {
    ReportFormat.table: table_text,
    ReportFormat.csv: as_csv,
    ReportFormat.json: as_json,
    ReportFormat.html: as_html,
}


def render(report: FrictionReport, fmt: ReportFormat) -> str:
    """The report as text in ``fmt`` (``table`` as plain text, no colours)."""
    return RENDERERS[fmt](report)
