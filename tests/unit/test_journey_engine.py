"""Every default friction rule on the shipped maps, list in / list out, with its boundaries."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest

from services.journeys.engine import Engine
from services.journeys.loader import default_maps_dir, load_maps
from services.journeys.state import CustomerState, Flag, Touchpoint

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
CHANNELS = ("web", "store", "billing", "support")
_ids = iter(range(10**9))


def ev(
    type_: str, at: timedelta = timedelta(), event_id: str | None = None, **attributes: Any
) -> Touchpoint:
    return Touchpoint(event_id or f"e{next(_ids)}", type_, T0 + at, attributes)


M = timedelta(minutes=1)
H = timedelta(hours=1)
D = timedelta(days=1)


class Customer:
    """One customer's state driven through the engine, collecting what it emits."""

    engine = Engine(load_maps(default_maps_dir()))

    def __init__(self, customer_id: str = "cus-1") -> None:
        self.id = customer_id
        self.state = CustomerState()
        self.flags: list[Flag] = []
        self.transitions: list[Any] = []

    def send(self, *events: Touchpoint) -> list[Flag]:
        new: list[Flag] = []
        for event in events:
            outcome = self.engine.apply(self.state, self.id, event)
            self.transitions += outcome.transitions
            new += outcome.flags
        self.flags += new
        return new

    def at(self, when: timedelta, **behind: timedelta) -> list[Flag]:
        """Event time has reached T0 + when on every channel (minus ``behind`` per channel)."""
        marks = {c: T0 + when - behind.get(c, timedelta()) for c in CHANNELS}
        new = self.engine.expire(self.state, self.id, marks)
        self.flags += new
        return new

    def rules(self) -> list[str]:
        return [f.rule_id for f in self.flags]


def test_payment_failed_fires_at_once_with_evidence() -> None:
    c = Customer()
    failed = ev("billing.payment_failed", event_id="pf-1", invoice_id="i1", reason="declined")
    (flag,) = c.send(failed)
    assert (flag.rule_id, flag.severity, flag.journey, flag.channel) == (
        "payment_failed",
        "high",
        "billing",
        "billing",
    )
    assert flag.evidence == ("pf-1",)
    assert flag.occurred_at == T0
    assert flag.customer_id == "cus-1"


@pytest.mark.parametrize(("minutes", "fires"), [(29, False), (31, True)])
def test_checkout_abandoned_after_30_minutes(minutes: int, fires: bool) -> None:
    c = Customer()
    c.send(ev("web.checkout_started", event_id="co-1", session_id="s"))
    c.at(minutes * M)
    assert c.rules() == (["checkout_abandoned"] if fires else [])
    if fires:
        (flag,) = c.flags
        assert (flag.stage, flag.channel, flag.evidence) == ("checkout", "web", ("co-1",))
        assert flag.occurred_at == T0 + 30 * M


@pytest.mark.parametrize(
    ("completion", "minutes"),
    [("web.checkout_completed", 20), ("store.pos_sale", 25), ("web.checkout_completed", 30)],
)
def test_checkout_completed_in_time_on_any_channel_is_no_abandonment(
    completion: str, minutes: int
) -> None:
    c = Customer()
    c.send(ev("web.checkout_started", session_id="s"), ev(completion, minutes * M, order_id="o"))
    c.at(2 * H)
    assert c.rules() == []


def test_completion_after_the_deadline_does_not_cancel() -> None:
    c = Customer()
    c.send(ev("web.checkout_started", session_id="s"), ev("web.checkout_completed", 35 * M))
    c.at(2 * H)
    assert c.rules() == ["checkout_abandoned"]


def test_abandonment_waits_for_a_lagging_store_feed() -> None:
    c = Customer()
    c.send(ev("web.checkout_started", session_id="s"))
    assert c.at(40 * M, store=20 * M) == []  # the store could still report a sale at 10:25
    assert c.at(55 * M) != []


def test_store_sale_arriving_before_its_late_checkout_start_cancels_abandonment() -> None:
    c = Customer()
    c.send(ev("store.pos_sale", 10 * M, order_id="o"), ev("web.checkout_started", session_id="s"))
    c.at(2 * H)
    assert c.rules() == []


@pytest.mark.parametrize(("span", "fires"), [(6 * D, True), (7 * D, True), (7 * D + M, False)])
def test_repeat_contact_is_the_third_ticket_within_7_days(span: timedelta, fires: bool) -> None:
    c = Customer()
    c.send(
        *(
            ev("support.ticket_opened", at, ticket_id=f"t{i}", topic="x", via="phone")
            for i, at in enumerate((timedelta(), 2 * D, span))
        )
    )
    assert c.rules().count("repeat_contact") == (1 if fires else 0)


def test_two_contacts_are_not_repeat_contact_and_out_of_order_third_fires_once() -> None:
    c = Customer()
    c.send(
        ev("support.ticket_opened", 3 * D, ticket_id="a", topic="x", via="chat"),
        ev("support.ticket_opened", 1 * D, ticket_id="b", topic="x", via="chat"),
    )
    assert "repeat_contact" not in c.rules()
    c.send(ev("support.ticket_opened", 2 * D, ticket_id="c", topic="x", via="chat"))
    assert c.rules().count("repeat_contact") == 1


def test_ticket_reopened_fires() -> None:
    c = Customer()
    assert [f.rule_id for f in c.send(ev("support.ticket_reopened", ticket_id="t"))] == [
        "ticket_reopened"
    ]


def test_sla_breach_after_48_hours_per_ticket() -> None:
    c = Customer()
    c.send(
        ev("support.ticket_opened", ticket_id="t1", topic="x", via="email"),
        ev("support.ticket_opened", H, ticket_id="t2", topic="x", via="email"),
        ev("support.ticket_resolved", 47 * H, ticket_id="t1"),
    )
    assert c.at(48 * H) == []
    (flag,) = c.at(49 * H + 1 * M)
    assert flag.rule_id == "support_sla_breach"
    assert flag.occurred_at == T0 + 49 * H  # t2's deadline


@pytest.mark.parametrize(
    ("type_", "attribute", "value", "rule", "fires"),
    [
        ("support.csat_submitted", "score", 2, "low_csat", True),
        ("support.csat_submitted", "score", 3, "low_csat", False),
        ("support.nps_submitted", "score", 6, "detractor_nps", True),
        ("support.nps_submitted", "score", 7, "detractor_nps", False),
        ("support.call_abandoned", "wait_seconds", 120, "call_abandoned", True),
        ("support.call_abandoned", "wait_seconds", 119.5, "call_abandoned", False),
        ("store.queue_wait", "wait_seconds", 600, "long_queue", True),
        ("store.queue_wait", "wait_seconds", 599, "long_queue", False),
    ],
)
def test_threshold_rules(type_: str, attribute: str, value: float, rule: str, fires: bool) -> None:
    c = Customer()
    c.send(ev(type_, store_id="s1", **{attribute: value}))
    assert c.rules() == ([rule] if fires else [])


@pytest.mark.parametrize(
    ("sessions", "span", "fires"),
    [
        (("a", "a", "a"), 9 * M, True),
        (("a", "a", "b"), 5 * M, False),
        (("a", "a", "a"), 11 * M, False),
    ],
)
def test_form_error_loop_is_three_in_one_session_within_10_minutes(
    sessions: tuple[str, ...], span: timedelta, fires: bool
) -> None:
    c = Customer()
    times = (timedelta(), span / 2, span)
    c.send(
        *(
            ev("web.form_error", t, form="f", error="e", session_id=s)
            for s, t in zip(sessions, times, strict=True)
        )
    )
    assert c.rules() == (["form_error_loop"] if fires else [])


def test_invoice_overdue_only_when_unpaid_after_the_due_day() -> None:
    paid, unpaid = Customer(), Customer()
    issued = {"amount": 10, "currency": "EUR", "due_date": "2026-11-10"}
    paid.send(
        ev("billing.invoice_issued", invoice_id="i1", **issued),
        ev("billing.payment_succeeded", 8 * D + 14 * H, invoice_id="i1"),
    )
    unpaid.send(
        ev("billing.invoice_issued", invoice_id="i1", **issued),
        ev("billing.payment_succeeded", 8 * D, invoice_id="other"),
    )
    due_end = datetime(2026, 11, 11, tzinfo=UTC) - T0
    assert paid.at(due_end + H) == []
    assert unpaid.at(due_end - M) == []
    (flag,) = unpaid.at(due_end + M)
    assert (flag.rule_id, flag.journey, flag.occurred_at) == (
        "invoice_overdue",
        "billing",
        datetime(2026, 11, 11, tzinfo=UTC),
    )


def test_no_overdue_while_the_billing_feed_is_behind() -> None:
    c = Customer()
    c.send(
        ev(
            "billing.invoice_issued",
            invoice_id="i1",
            amount=5,
            currency="EUR",
            due_date="2026-11-02T12:00:00Z",
        )
    )
    assert c.at(9 * H, billing=6 * H + M) == []  # 18:00 elsewhere, billing only at 11:59
    assert c.at(9 * H, billing=7 * H) == []
    c.send(ev("billing.payment_succeeded", 2 * H, invoice_id="i1"))  # billing catches up
    assert c.at(12 * H) == []


@pytest.mark.parametrize(("gap", "fires"), [(29 * D, True), (31 * D, False)])
def test_return_within_30_days_of_a_purchase(gap: timedelta, fires: bool) -> None:
    c = Customer()
    c.send(
        ev("store.pos_sale", store_id="s", order_id="o", amount=5, currency="EUR"),
        ev("store.return", gap, store_id="s", order_id="o", amount=5, currency="EUR", reason="r"),
    )
    assert c.rules().count("return_after_purchase") == (1 if fires else 0)


def test_stage_stall_once_when_consider_lasts_over_7_days() -> None:
    c = Customer()
    c.send(ev("web.product_view", sku="x", session_id="s"))
    assert c.at(7 * D - M) == []
    assert [f.rule_id for f in c.at(7 * D + M)] == ["stage_stall"]
    assert c.at(9 * D) == []
    moved = Customer()
    moved.send(
        ev("web.product_view", sku="x", session_id="s"),
        ev("web.checkout_started", D, session_id="s"),
        ev("web.checkout_completed", D + M, order_id="o", amount=1, currency="EUR"),
    )
    assert "stage_stall" not in [f.rule_id for f in moved.at(10 * D)]


@pytest.mark.parametrize(("gap", "fires"), [(23 * H, True), (25 * H, False)])
def test_digital_to_support_after_a_failed_payment(gap: timedelta, fires: bool) -> None:
    c = Customer()
    c.send(
        ev("billing.payment_failed", invoice_id="i", amount=5, currency="EUR", reason="x"),
        ev("support.ticket_opened", gap, ticket_id="t", topic="billing", via="phone"),
    )
    assert ("digital_to_support" in c.rules()) is fires
    if fires:
        flag = next(f for f in c.flags if f.rule_id == "digital_to_support")
        payment = next(f for f in c.flags if f.rule_id == "payment_failed")
        assert payment.flag_id in flag.evidence


def test_digital_to_support_when_the_abandonment_is_found_after_the_ticket() -> None:
    c = Customer()
    c.send(
        ev("web.checkout_started", session_id="s"),
        ev("support.ticket_opened", 2 * H, ticket_id="t", topic="checkout", via="chat"),
    )
    c.at(3 * H)
    assert sorted(c.rules()) == ["checkout_abandoned", "digital_to_support"]


def test_a_duplicate_event_changes_nothing() -> None:
    c = Customer()
    ticket = ev("support.ticket_opened", ticket_id="t", topic="x", via="chat")
    c.send(ticket, ticket, ticket)
    assert "repeat_contact" not in c.rules()
    failed = ev("billing.payment_failed", invoice_id="i", amount=5, currency="EUR", reason="x")
    c.send(failed, failed)
    assert c.rules().count("payment_failed") == 1


def test_flags_are_deterministic_and_fire_once_per_episode() -> None:
    def run() -> list[str]:
        c = Customer()
        c.send(ev("web.checkout_started", event_id="co", session_id="s"))
        c.at(H)
        c.at(2 * H)
        return [f.flag_id for f in c.flags]

    first, second = run(), run()
    assert first == second
    assert len(first) == 1


def test_stage_transitions_follow_event_time() -> None:
    c = Customer()
    c.send(
        ev("web.page_view", url="u", session_id="s"),
        ev("web.product_view", 5 * M, sku="x", session_id="s"),
        ev("web.search", 2 * M, query="q", results_count=1),
    )  # late: stays in consider
    assert [(t.journey, t.from_stage, t.to_stage) for t in c.transitions] == [
        ("purchase", None, "discover"),
        ("purchase", "discover", "consider"),
    ]
    assert c.state.stages["purchase"].stage == "consider"


def test_state_stays_bounded() -> None:
    c = Customer()
    for i in range(500):
        c.send(
            ev("web.form_error", i * 20 * M, form="f", error="e", session_id="s"),
            ev("web.page_view", i * 20 * M, url="u", session_id="s"),
        )
    assert len(c.state.seen) <= 64
    assert all(len(v) <= 6 for v in c.state.counts.values())
    assert "form_error_loop" not in c.rules()


def test_next_deadline_is_the_earliest_pending() -> None:
    c = Customer()
    c.send(
        ev("support.ticket_opened", ticket_id="t", topic="x", via="chat"),
        ev("web.checkout_started", H, session_id="s"),
    )
    assert c.engine.next_deadline(c.state) == T0 + H + 30 * M


def _scenario() -> list[Touchpoint]:
    """Half a day of one customer across all channels, one event a minute or so."""
    pay = {"amount": 20, "currency": "EUR"}
    return [
        ev("web.page_view", 0 * M, "s1", url="u", session_id="a"),
        ev("web.product_view", 2 * M, "s2", sku="x", session_id="a"),
        ev("web.form_error", 3 * M, "s3", form="f", error="e", session_id="a"),
        ev("web.form_error", 4 * M, "s4", form="f", error="e", session_id="a"),
        ev("web.form_error", 5 * M, "s5", form="f", error="e", session_id="a"),
        ev("web.checkout_started", 6 * M, "s6", cart_value=20, currency="EUR", session_id="a"),
        ev("store.queue_wait", 8 * M, "s7", store_id="s", wait_seconds=700),
        ev("billing.invoice_issued", 9 * M, "s8", invoice_id="i", due_date="2026-11-02", **pay),
        ev("billing.payment_failed", 10 * M, "s9", invoice_id="i", reason="x", **pay),
        ev("support.ticket_opened", 12 * M, "s10", ticket_id="t1", topic="x", via="phone"),
        ev("support.ticket_opened", 13 * M, "s11", ticket_id="t2", topic="x", via="chat"),
        ev("support.call_abandoned", 14 * M, "s12", wait_seconds=300),
        ev("support.ticket_opened", 15 * M, "s13", ticket_id="t3", topic="x", via="email"),
        ev("support.ticket_resolved", 16 * M, "s14", ticket_id="t1"),
        ev("support.csat_submitted", 17 * M, "s15", score=1),
    ]


def _flags_after(events: list[Touchpoint]) -> set[tuple[str, str]]:
    c = Customer()
    for event in events:
        c.send(event)
        c.at(event.occurred_at - T0 - 5 * M)  # watermark trails the stream by the lateness
    c.at(3 * D)
    return {(f.rule_id, f.flag_id) for f in c.flags}


@pytest.mark.parametrize("seed", range(20))
def test_out_of_order_within_lateness_gives_the_in_order_flags(seed: int) -> None:
    import random

    events = _scenario()
    expected = _flags_after(events)
    assert {rule for rule, _ in expected} == {
        "form_error_loop",
        "checkout_abandoned",
        "long_queue",
        "payment_failed",
        "invoice_overdue",
        "repeat_contact",
        "call_abandoned",
        "support_sla_breach",
        "low_csat",
        "digital_to_support",
    }
    rng = random.Random(seed)
    jittered = sorted(events, key=lambda e: e.occurred_at + rng.uniform(0, 4.9) * M)
    assert _flags_after(jittered) == expected


def test_state_round_trips_through_bytes_and_stays_small() -> None:
    from services.journeys.codec import dump_state, load_state

    c = Customer()
    for event in _scenario():
        c.send(event)
    data = dump_state(c.state)
    assert len(data) < 2048, len(data)
    restored = Customer()
    restored.state = load_state(data)
    assert dump_state(restored.state) == data
    later = [ev("support.ticket_resolved", 20 * M, "s20", ticket_id="t2"), _scenario()[9]]
    assert [f.flag_id for f in c.send(*later)] == [f.flag_id for f in restored.send(*later)]
    assert [f.flag_id for f in c.at(3 * D)] == [f.flag_id for f in restored.at(3 * D)]
    assert restored.state.seen == c.state.seen


def test_a_state_whose_thens_lack_channel_and_stage_still_loads_and_pairs() -> None:
    """States written before a ``then`` kept its channel and stage (two-item entries)."""
    from services.journeys.codec import dump_state, load_state

    c = Customer()
    c.send(ev("support.ticket_opened", 2 * H, "t1", ticket_id="1", topic="pay", via="chat"))
    body = orjson.loads(dump_state(c.state))
    assert body["t"]["digital_to_support"][0][2:] == ["support", "contact"]
    body["t"] = {rule: [item[:2] for item in items] for rule, items in body["t"].items()}
    old = Customer()
    old.state = load_state(orjson.dumps(body))
    old.send(checkout(0 * H, "k1"))
    (flag,) = [f for f in old.at(1 * H) if f.rule_id == "digital_to_support"]
    assert (flag.channel, flag.stage, flag.evidence[-1]) == ("support", None, "t1")


def test_two_sequence_rules_can_follow_the_same_flag() -> None:
    from services.journeys.maps import JourneyMap

    shipped = load_maps(default_maps_dir())
    extra = JourneyMap.model_validate(
        {
            "journey": "escalation",
            "stages": [{"id": "escalated", "entered_by": ["support.ticket_opened"]}],
            "rules": [
                {
                    "id": "payment_then_call",
                    "kind": "sequence",
                    "severity": "low",
                    "after": ["flag:payment_failed"],
                    "then": ["support.ticket_opened"],
                    "within": "1h",
                },
            ],
        }
    )
    engine = Engine({**shipped, "escalation": extra})
    state = CustomerState()
    engine.apply(
        state,
        "c",
        ev("billing.payment_failed", invoice_id="i", amount=1, currency="EUR", reason="x"),
    )
    flags = engine.apply(
        state, "c", ev("support.ticket_opened", 30 * M, ticket_id="t", topic="x", via="chat")
    ).flags
    assert {f.rule_id for f in flags} == {"digital_to_support", "payment_then_call"}


# -- merges: one person's state built under two ids, combined -------------------------------


def merged(winner: Customer, loser: Customer) -> list[Flag]:
    new = winner.engine.combine(winner.state, loser.state, winner.id)
    winner.flags += new
    return new


def test_contacts_under_two_profiles_count_together_after_a_merge() -> None:
    known, by_phone = Customer("cus-1"), Customer("ts_phone")
    ticket = {"topic": "delivery", "via": "phone"}
    known.send(ev("support.ticket_opened", D, "t1", ticket_id="1", **ticket))
    by_phone.send(ev("support.ticket_opened", 2 * D, "t2", ticket_id="2", **ticket))
    by_phone.send(ev("support.ticket_opened", 3 * D, "t3", ticket_id="3", **ticket))
    (flag,) = [f for f in merged(known, by_phone) if f.rule_id == "repeat_contact"]
    assert (flag.customer_id, flag.evidence, flag.channel) == (
        "cus-1",
        ("t1", "t2", "t3"),
        "support",
    )


def test_two_contacts_under_two_profiles_are_not_a_repeat() -> None:
    known, by_phone = Customer("cus-1"), Customer("ts_phone")
    ticket = {"topic": "delivery", "via": "phone"}
    known.send(ev("support.ticket_opened", D, "t1", ticket_id="1", **ticket))
    by_phone.send(ev("support.ticket_opened", 9 * D, "t2", ticket_id="2", **ticket))
    assert "repeat_contact" not in [f.rule_id for f in merged(known, by_phone)]


def test_an_anonymous_checkout_completed_after_login_is_no_abandonment() -> None:
    anonymous, known = Customer("ts_anon"), Customer("cus-1")
    anonymous.send(
        ev("web.checkout_started", 0 * M, "s1", session_id="s", cart_value=5, currency="EUR")
    )
    known.send(ev("web.checkout_completed", 12 * M, "c1", order_id="o", amount=5, currency="EUR"))
    assert merged(known, anonymous) == []  # the completion arrived before the state did
    assert known.at(2 * H) == []
    assert known.state.stages["purchase"].stage == "purchased"  # the later entry holds


def test_an_abandoned_anonymous_checkout_is_flagged_once_under_the_winner() -> None:
    anonymous, known = Customer("ts_anon"), Customer("cus-1")
    anonymous.send(
        ev("web.checkout_started", 0 * M, "s1", session_id="s", cart_value=5, currency="EUR")
    )
    known.send(ev("web.page_view", 5 * M, url="u", session_id="s"))
    merged(known, anonymous)
    (flag,) = known.at(2 * H)
    assert (flag.rule_id, flag.customer_id, flag.evidence) == (
        "checkout_abandoned",
        "cus-1",
        ("s1",),
    )
    assert known.at(3 * H) == []


def test_friction_under_one_profile_then_a_ticket_under_the_other_is_digital_to_support() -> None:
    anonymous, known = Customer("ts_anon"), Customer("cus-1")
    for i in range(3):
        anonymous.send(ev("web.form_error", i * M, f"f{i}", form="pay", error="x", session_id="s"))
    known.send(ev("support.ticket_opened", 2 * H, "t1", ticket_id="1", topic="pay", via="chat"))
    (flag,) = merged(known, anonymous)
    assert flag.rule_id == "digital_to_support"
    assert flag.evidence[-1] == "t1"
    assert {"f0", "f1", "f2"} <= set(flag.evidence)


def test_a_ticket_both_profiles_saw_is_kept_once_after_the_merge() -> None:
    known, other = Customer("cus-1"), Customer("ts_phone")
    ticket = {"ticket_id": "1", "topic": "pay", "via": "chat"}
    known.send(ev("support.ticket_opened", 2 * H, "t1", **ticket))
    other.send(ev("support.ticket_resolved", 3 * H, "r0", ticket_id="0"))
    other.send(ev("support.ticket_opened", 2 * H, "t1", **ticket))  # late there: still resolved
    assert other.state.thens["digital_to_support"][0].stage == "resolved"
    merged(known, other)
    assert [t.evidence for t in known.state.thens["digital_to_support"]] == [("t1",)]


def test_a_stall_the_other_profile_ended_late_is_flagged_and_duplicates_count_once() -> None:
    anonymous, known = Customer("ts_anon"), Customer("cus-1")
    view = ev("web.product_view", 0 * D, "v1", sku="k", session_id="s")
    anonymous.send(view)
    known.send(view)  # the same event delivered again after the merge, before the state
    known.send(
        ev("web.checkout_started", 9 * D, "s9", session_id="s", cart_value=1, currency="EUR")
    )
    (stall,) = [f for f in known.flags if f.rule_id == "stage_stall"]
    assert stall.evidence == ("v1",)
    # the anonymous visit's stall is the same episode: if raised again, it is the same flag
    assert {f.flag_id for f in merged(known, anonymous)} <= {stall.flag_id}
    assert len(known.state.seen) == 2


def test_leaving_a_stage_after_its_budget_is_a_stall_in_event_time() -> None:
    c = Customer()
    c.send(ev("web.product_view", 0 * D, "v1", sku="k", session_id="s"))
    (flag,) = c.send(ev("web.page_view", 8 * D, url="u", session_id="s"))
    assert (flag.rule_id, flag.evidence, flag.occurred_at) == ("stage_stall", ("v1",), T0 + 7 * D)
    c2 = Customer()
    c2.send(ev("web.product_view", 0 * D, "v2", sku="k", session_id="s"))
    assert c2.send(ev("web.page_view", 6 * D, url="u", session_id="s")) == []


# -- results must not depend on when deadlines are checked ----------------------------------


def checkout(at: timedelta, event_id: str) -> Touchpoint:
    return ev("web.checkout_started", at, event_id, session_id="s", cart_value=1, currency="EUR")


def test_a_second_checkout_after_the_first_deadline_is_its_own_episode_unchecked() -> None:
    c = Customer()
    c.send(checkout(0 * D, "k1"), checkout(2 * D, "k2"))  # no deadline check in between
    assert sorted(f.evidence for f in c.at(3 * D)) == [("k1",), ("k2",)]


def test_a_ticket_after_a_friction_flagged_late_still_pairs() -> None:
    c = Customer()
    ticket = {"topic": "pay", "via": "chat"}
    c.send(checkout(0 * H, "k1"))
    c.send(ev("support.ticket_opened", 2 * H, "t1", ticket_id="1", **ticket))
    c.send(ev("support.ticket_opened", 3 * D, "t2", ticket_id="2", **ticket))
    flagged = c.at(4 * D)  # the abandonment is found only now
    follow = [f for f in flagged if f.rule_id == "digital_to_support"]
    assert [f.evidence[-1] for f in follow] == ["t1"]


def test_a_sequence_flag_is_the_same_whichever_of_its_two_sides_was_seen_first() -> None:
    """The abandonment found before the ticket (a prompt deadline check) or after the ticket
    was resolved (a check that came late, as after a restart): one and the same flag, on the
    ticket's channel and its stage at the ticket."""
    ticket = {"ticket_id": "1", "topic": "pay", "via": "chat"}
    opened = ev("support.ticket_opened", 2 * H, "t1", **ticket)
    resolved = ev("support.ticket_resolved", 3 * H, "r1", ticket_id="1")
    prompt, late = Customer(), Customer()
    prompt.send(checkout(0 * H, "k1"))
    prompt.at(1 * H)  # abandoned: found before the ticket
    prompt.send(opened, resolved)
    late.send(checkout(0 * H, "k1"), opened, resolved)
    late.at(4 * H)  # found only after the ticket was resolved
    (first,) = [f for f in prompt.flags if f.rule_id == "digital_to_support"]
    (second,) = [f for f in late.flags if f.rule_id == "digital_to_support"]
    assert first == second
    assert (first.channel, first.stage, first.occurred_at) == ("support", "contact", T0 + 2 * H)


def test_an_earlier_completion_is_not_hidden_by_a_later_one() -> None:
    c = Customer()
    sale = {"store_id": "s1", "amount": 5, "currency": "EUR"}
    c.send(ev("store.pos_sale", 16 * M, "p1", order_id="o1", **sale))
    c.send(ev("store.pos_sale", 2 * D, "p2", order_id="o2", **sale))
    c.send(checkout(0 * M, "k1"))  # the start arrives after both sales
    assert "checkout_abandoned" not in [f.rule_id for f in c.at(3 * D)]


def test_a_late_start_of_the_current_stay_keeps_its_latest_confirmation() -> None:
    """Seen through the identity stage: a login (and the page after it) can reach a customer
    before the anonymous browsing that preceded it, read from another raw partition. In event
    time the customer left ``consider`` for ``discover`` minutes later, so no stall."""
    c = Customer()
    c.send(
        ev("web.product_view", 0 * D, sku="k", session_id="s"),  # consider, days before
        ev("web.page_view", 2 * D + 13 * M, url="u", session_id="s2"),  # discover (after login)
        ev("web.page_view", 2 * D + 6 * M, url="u", session_id="s2"),  # late: the stay began here
        ev("web.product_view", 2 * D + 8 * M, "late", sku="k", session_id="s2"),  # late: consider
    )
    assert c.state.stages["purchase"].stage == "discover"
    assert [f for f in c.at(30 * D) if f.rule_id == "stage_stall"] == []


def test_a_late_event_from_another_stage_splits_the_stay_where_it_happened() -> None:
    """consider at 12:34, search (discover) at 12:36, consider again at 12:38 and 12:41;
    the search arrives after both. In time order the stay in consider began at 12:38."""
    c = Customer()
    first = ev("web.product_view", 0 * M, "v1", sku="k", session_id="s")
    again = ev("web.product_view", 4 * M, "v2", sku="k", session_id="s")
    later = ev("web.product_view", 7 * M, "v3", sku="k", session_id="s")
    search = ev("web.search", 2 * M, query="q", results_count=1)
    c.send(first, later, search, again)  # search and the re-entry arrive late
    visit = c.state.stages["purchase"]
    assert (visit.stage, visit.event_id) == ("consider", "v2")
    assert [f.rule_id for f in c.at(30 * D)] == ["stage_stall"]
    assert c.flags[-1].evidence == ("v2",)


def test_a_stay_split_by_a_late_event_after_its_budget_was_a_stall() -> None:
    c = Customer()
    c.send(
        ev("web.product_view", 0 * D, "v1", sku="k", session_id="s"),
        ev("web.product_view", 9 * D, "v2", sku="k", session_id="s"),
    )
    (flag,) = c.send(ev("web.page_view", 8 * D, url="u", session_id="s"))  # left on day 8
    assert (flag.rule_id, flag.evidence, flag.occurred_at) == ("stage_stall", ("v1",), T0 + 7 * D)
    assert c.state.stages["purchase"].event_id == "v2"
    assert c.at(10 * D) == []  # the stay from day 9 is not over its budget yet
