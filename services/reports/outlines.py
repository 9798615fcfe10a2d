"""Journey outlines for reports, from the journey maps: stage order and rule severities."""

from __future__ import annotations

from services.errors import ConfigurationError
from services.journeys.loader import configured_maps_dir, load_maps
from services.reports.friction import JourneyOutline
from services.settings import Settings

__all__ = ["journey_outlines"]


def journey_outlines(settings: Settings) -> tuple[dict[str, JourneyOutline], str | None]:
    """The outlines of the configured journey maps, and why there are none if the maps
    cannot be read (a report still works without them: from the store alone)."""
    try:
        maps = load_maps(configured_maps_dir(settings))
    except ConfigurationError as error:
        first = str(error).splitlines()[0] if str(error) else "unreadable"
        return {}, f"journey maps not used ({first}); run `touchstream maps validate`"
    return {
        name: JourneyOutline(
            stages=tuple(s.id for s in journey.stages),
            severities={r.id: r.severity for r in journey.rules},
        )
        for name, journey in maps.items()
    }, None
