"""The identity graph: links, merges, guard rails, determinism (docs/adr/0001)."""

from __future__ import annotations

import random

import pytest

from services.identity.graph import GuardRails, IdentityGraph


def test_anonymous_visitor_becomes_the_known_customer_at_login() -> None:
    g = IdentityGraph()
    browsing = g.resolve({"anonymous_id": "anon-1"}, "e1")
    assert browsing.created
    login = g.resolve({"anonymous_id": "anon-1", "email": "Ana@Example.com"}, "e2")
    assert login.customer_id == browsing.customer_id
    assert not login.created
    assert login.linked == ("email:ana@example.com",)
    assert g.resolve({"email": "ana@example.com"}, "e3").customer_id == browsing.customer_id


def test_a_crm_customer_id_names_the_profile() -> None:
    g = IdentityGraph()
    assert (
        g.resolve({"customer_id": "cus-1042", "email": "a@x.com"}, "e1").customer_id == "cus-1042"
    )
    assert g.resolve({"email": "A@x.com"}, "e2").customer_id == "cus-1042"


def test_two_profiles_linked_by_an_event_merge_into_the_older() -> None:
    g = IdentityGraph()
    web = g.resolve({"anonymous_id": "anon-9"}, "e1").customer_id
    store = g.resolve({"loyalty_id": "LOY-1", "email": "b@x.com"}, "e2").customer_id
    assert web != store
    linked = g.resolve({"anonymous_id": "anon-9", "email": "b@x.com"}, "e3")
    assert linked.customer_id == web
    (merge,) = linked.merges
    assert (merge.winner, merge.loser, merge.event_id) == (web, store, "e3")
    assert merge.moved == ("email:b@x.com", "loyalty_id:LOY-1")
    assert g.resolve({"loyalty_id": "LOY-1"}, "e4").customer_id == web
    assert store not in g.profiles


def test_two_crm_customers_are_never_merged_by_an_event() -> None:
    g = IdentityGraph()
    g.resolve({"customer_id": "cus-1", "email": "kiosk@x.com"}, "e1")
    g.resolve({"customer_id": "cus-2", "phone": "+4915100000002"}, "e2")
    shared = g.resolve({"email": "kiosk@x.com", "phone": "+4915100000002"}, "e3")
    assert shared.customer_id == "cus-1"
    assert shared.merges == ()
    (refusal,) = shared.refusals
    assert refusal.refused == ("cus-2",)
    assert "customer_id" in refusal.reason
    assert g.resolve({"phone": "+4915100000002"}, "e4").customer_id == "cus-2"


def test_a_shared_device_cannot_collect_a_sixth_email() -> None:
    g = IdentityGraph()
    for i in range(5):
        assert g.resolve({"anonymous_id": "kiosk", "email": f"p{i}@x.com"}, f"e{i}").refusals == ()
    sixth = g.resolve({"anonymous_id": "kiosk", "email": "p5@x.com"}, "e5")
    (refusal,) = sixth.refusals
    assert (refusal.refused, refusal.reason) == (("email:p5@x.com",), "identifier limit")
    assert g.profiles[sixth.customer_id].count("email") == 5
    assert "email:p5@x.com" not in g.owner


def test_guard_rails_are_configurable() -> None:
    g = IdentityGraph(GuardRails(max_anonymous_ids=2))
    customer = g.resolve({"email": "c@x.com", "anonymous_id": "a1"}, "e1").customer_id
    g.resolve({"email": "c@x.com", "anonymous_id": "a2"}, "e2")
    assert g.resolve({"email": "c@x.com", "anonymous_id": "a3"}, "e3").refusals
    assert g.profiles[customer].count("anonymous_id") == 2


def test_an_event_needs_an_identifier() -> None:
    with pytest.raises(ValueError, match="at least one identifier"):
        IdentityGraph().resolve({"email": None}, "e1")


def _run(events: list[tuple[dict[str, str], str]]) -> list[str]:
    g = IdentityGraph()
    return [g.resolve(identity, event_id).customer_id for identity, event_id in events]


def test_the_same_events_in_the_same_order_give_the_same_ids() -> None:
    rng = random.Random(3)
    events = []
    for i in range(2000):
        person = rng.randrange(300)
        identity = {"anonymous_id": f"anon-{person}-{rng.randrange(3)}"}
        if rng.random() < 0.3:
            identity["email"] = f"p{person}@x.com"
        events.append((identity, f"e{i}"))
    assert _run(events) == _run(events)
    g = IdentityGraph()
    for identity, event_id in events:
        g.resolve(identity, event_id)
    for key, owner in g.owner.items():  # every identifier points at a live profile holding it
        kind, _, value = key.partition(":")
        assert value in g.profiles[owner].identifiers[kind]


def test_a_known_customer_wins_a_merge_over_an_older_anonymous_profile() -> None:
    g = IdentityGraph()
    anonymous = g.resolve({"anonymous_id": "anon-7"}, "e1").customer_id
    g.resolve({"customer_id": "cus-7", "email": "g@x.com"}, "e2")
    linked = g.resolve({"anonymous_id": "anon-7", "email": "g@x.com"}, "e3")
    assert linked.customer_id == "cus-7"
    (merge,) = linked.merges
    assert (merge.winner, merge.loser, merge.reason) == ("cus-7", anonymous, "linked")


def test_identifying_renames_the_profile_to_its_crm_id() -> None:
    g = IdentityGraph()
    anonymous = g.resolve({"anonymous_id": "anon-3"}, "e1").customer_id
    assert anonymous.startswith("ts_")
    login = g.resolve({"anonymous_id": "anon-3", "customer_id": "cus-3"}, "e2")
    assert login.customer_id == "cus-3"
    (merge,) = login.merges
    assert (merge.winner, merge.loser, merge.event_id, merge.reason) == (
        "cus-3",
        anonymous,
        "e2",
        "identified",
    )
    assert merge.moved == ("anonymous_id:anon-3", "customer_id:cus-3")
    assert anonymous not in g.profiles
    assert g.resolve({"anonymous_id": "anon-3"}, "e3").customer_id == "cus-3"


def test_positions_order_profiles_so_a_replay_picks_the_same_winner() -> None:
    g = IdentityGraph()
    g.resolve({"anonymous_id": "late"}, "e1", position=90)
    early = g.resolve({"email": "h@x.com"}, "e2", position=10).customer_id
    linked = g.resolve({"anonymous_id": "late", "email": "h@x.com"}, "e3", position=91)
    assert linked.customer_id == early  # the lower position is the older profile


def test_a_graph_over_byte_stores_resumes_where_it_stopped() -> None:
    from services.identity.stage import IdentityStage

    table: dict[bytes, bytes] = {}
    first = IdentityStage(table).graph
    first.resolve({"anonymous_id": "a1"}, "e1", position=1)
    first.resolve({"anonymous_id": "a1", "email": "i@x.com"}, "e2", position=2)
    resumed = IdentityStage(table).graph  # a restarted worker: only the table survives
    assert resumed.resolve({"email": "I@x.com"}, "e3", position=3).customer_id == (
        first.resolve({"anonymous_id": "a1"}, "e4", position=4).customer_id
    )
    assert resumed.resolve({"email": "i@x.com", "customer_id": "cus-i"}, "e5").merges
    assert IdentityStage(table).graph.resolve({"anonymous_id": "a1"}, "e6").customer_id == "cus-i"
