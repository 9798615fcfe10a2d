"""The period a report covers: whole UTC days (the daily tables' grain), ``until`` exclusive,
and the previous period of equal length just before it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from services.errors import ReportError

__all__ = ["DEFAULT_DAYS", "FORMS", "MAX_DAYS", "Period", "parse_moment", "period_of"]

DEFAULT_DAYS = 7
MAX_DAYS = 731  # two years, leap day included: the daily series stays a readable size
FORMS = "a date (2026-03-02) or an ISO date-time (2026-03-02T10:00:00Z, +01:00 offsets too)"


@dataclass(frozen=True, slots=True)
class Period:
    """``since`` (first day, included) to ``until`` (first day after, excluded), UTC days.
    ``widened`` says a bound given as a time of day was moved out to a whole day."""

    since: date
    until: date
    widened: bool = False

    @property
    def days(self) -> int:
        return (self.until - self.since).days

    @property
    def previous_since(self) -> date:
        """First day of the previous period of equal length; it ends at ``since``."""
        return self.since - timedelta(days=self.days)

    @property
    def start(self) -> datetime:
        return _midnight(self.since)

    @property
    def end(self) -> datetime:
        return _midnight(self.until)

    @property
    def previous_start(self) -> datetime:
        return _midnight(self.previous_since)

    def each_day(self) -> list[date]:
        return [self.since + timedelta(days=n) for n in range(self.days)]


def _midnight(day: date) -> datetime:
    return datetime.combine(day, time(), UTC)


def parse_moment(name: str, text: str) -> tuple[datetime, bool]:
    """``text`` as a UTC time, and whether it was a date (a midnight): ISO dates and
    date-times; a date-time without an offset is taken as UTC."""
    value = text.strip()
    try:
        if len(value) == 10:
            return _midnight(date.fromisoformat(value)), True
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise ReportError(f"{name} {text!r} is not {FORMS}") from None
    moment = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    return moment, False


def _first_day(moment: datetime) -> tuple[date, bool]:
    return moment.date(), moment.time() != time()


def _day_after(moment: datetime) -> tuple[date, bool]:
    """The first whole day at or after ``moment``: a time past midnight ends that day."""
    if moment.time() == time():
        return moment.date(), False
    return moment.date() + timedelta(days=1), True


def period_of(since: str | None, until: str | None, now: datetime) -> Period:
    """The period asked for: ``since`` and ``until`` as ISO dates or date-times (``until``
    exclusive), widened to whole UTC days. Without ``until`` it ends with today (``now``'s UTC
    day); without ``since`` it is the :data:`DEFAULT_DAYS` days before ``until``."""
    widened = False
    try:
        if until is None:
            end = now.astimezone(UTC).date() + timedelta(days=1)
        else:
            end, widened = _day_after(parse_moment("until", until)[0])
        if since is None:
            start = end - timedelta(days=DEFAULT_DAYS)
        else:
            start, moved = _first_day(parse_moment("since", since)[0])
            widened = widened or moved
        _ = start - (end - start)  # the previous period must exist, too
    except OverflowError:
        raise ReportError(f"the period {since!r} to {until!r} is out of range") from None
    period = Period(start, end, widened)
    if period.days <= 0:
        raise ReportError(
            f"since ({start.isoformat()}) must be before until ({end.isoformat()}, exclusive)"
        )
    if period.days > MAX_DAYS:
        raise ReportError(
            f"the period from {start.isoformat()} to {end.isoformat()} is {period.days} days; "
            f"a report covers at most {MAX_DAYS}"
        )
    return period
