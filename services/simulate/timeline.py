"""One person's calendar: at most one episode a day, and support tickets spaced so that only
a deliberate run of three can raise ``repeat_contact``."""

from __future__ import annotations

from collections.abc import Sequence
from random import Random

TICKET_SPAN = 8  # days: three tickets within this span could fall within 7 days of each other


class Timeline:
    """The days of the scenario a person's episodes have taken."""

    def __init__(self, days: int, rng: Random) -> None:
        self.days = days
        self.rng = rng
        self.taken: list[str | None] = [None] * days
        self.tickets: list[tuple[int, int]] = []  # (day, run): run 0 = a ticket of its own
        self._runs = 0

    def first_taken(self) -> int | None:
        return next((day for day, name in enumerate(self.taken) if name is not None), None)

    def place(
        self,
        name: str,
        offsets: Sequence[int],
        *,
        earliest: int = 0,
        latest: int | None = None,
        tickets: Sequence[int] = (),
        run: bool = False,
    ) -> int | None:
        """Take the days ``anchor + offsets`` for an episode, for a random free anchor in
        ``[earliest, latest]``; None when there is none. ``tickets`` are the offsets on which
        the episode opens a ticket; ``run`` marks them as one deliberate repeat contact."""
        top = self.days - 1 - max(offsets)
        if latest is not None:
            top = min(top, latest)
        run_id = 0
        if run:
            self._runs += 1
            run_id = self._runs
        free = [
            anchor
            for anchor in range(max(earliest, 0), top + 1)
            if all(self.taken[anchor + o] is None for o in offsets)
            and self._spaced([(anchor + o, run_id) for o in tickets])
        ]
        if not free:
            return None
        anchor = self.rng.choice(free)
        for offset in offsets:
            self.taken[anchor + offset] = name
        self.tickets += [(anchor + o, run_id) for o in tickets]
        return anchor

    def _spaced(self, new: list[tuple[int, int]]) -> bool:
        """No three tickets within ``TICKET_SPAN`` days unless all three are one run."""
        if not new:
            return True
        days = sorted([*self.tickets, *new])
        for i in range(len(days) - 2):
            first, _, third = days[i : i + 3]
            runs = {run for _, run in days[i : i + 3]}
            if third[0] - first[0] <= TICKET_SPAN and (len(runs) > 1 or 0 in runs):
                return False
        return True
