"""Journey maps from YAML: the shipped maps are DESIGN §3's defaults, and a broken map says
which file, key and line is wrong, and how."""

from __future__ import annotations

import re
import shutil
from datetime import timedelta
from pathlib import Path
from typing import TypeVar

import pytest

from services.errors import ConfigurationError
from services.journeys.loader import configured_maps_dir, default_maps_dir, load_map, load_maps
from services.journeys.maps import (
    AbsenceRule,
    CountRule,
    EventRule,
    JourneyMap,
    SequenceRule,
    StallRule,
)
from services.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
R = TypeVar("R")

#: DESIGN.md §3: rule id -> (journey, kind, severity).
DEFAULT_RULES = {
    "payment_failed": ("billing", EventRule, "high"),
    "checkout_abandoned": ("purchase", AbsenceRule, "medium"),
    "repeat_contact": ("support", CountRule, "high"),
    "ticket_reopened": ("support", EventRule, "medium"),
    "support_sla_breach": ("support", AbsenceRule, "medium"),
    "low_csat": ("support", EventRule, "medium"),
    "detractor_nps": ("support", EventRule, "medium"),
    "call_abandoned": ("support", EventRule, "low"),
    "long_queue": ("purchase", EventRule, "low"),
    "form_error_loop": ("purchase", CountRule, "medium"),
    "invoice_overdue": ("billing", AbsenceRule, "high"),
    "return_after_purchase": ("purchase", SequenceRule, "low"),
    "stage_stall": ("purchase", StallRule, "low"),
    "digital_to_support": ("support", SequenceRule, "high"),
}


@pytest.fixture(scope="module")
def shipped() -> dict[str, JourneyMap]:
    return load_maps(default_maps_dir())


def rule(maps: dict[str, JourneyMap], rule_id: str, kind: type[R]) -> R:
    journey = DEFAULT_RULES[rule_id][0]
    found = next(r for r in maps[journey].rules if r.id == rule_id)
    assert isinstance(found, kind)
    return found


# --- the shipped maps ----------------------------------------------------------------------


def test_the_shipped_maps_are_the_repositorys_journey_maps_directory() -> None:
    assert default_maps_dir() == ROOT / "journey_maps"
    assert configured_maps_dir(Settings(journey_maps_dir=None)) == ROOT / "journey_maps"
    assert configured_maps_dir(Settings(journey_maps_dir=Path("/srv/maps"))) == Path("/srv/maps")


def test_the_shipped_maps_hold_exactly_the_default_rules(shipped: dict[str, JourneyMap]) -> None:
    assert list(shipped) == ["billing", "purchase", "support"]
    found = [
        (r.id, journey, type(r), r.severity) for journey, m in shipped.items() for r in m.rules
    ]
    assert sorted(found) == sorted((i, *spec) for i, spec in DEFAULT_RULES.items())
    assert all(r.description for m in shipped.values() for r in m.rules)


def test_the_shipped_stages(shipped: dict[str, JourneyMap]) -> None:
    purchase = shipped["purchase"]
    assert [s.id for s in purchase.stages] == [
        "discover",
        "consider",
        "checkout",
        "purchased",
        "post_purchase",
    ]
    assert purchase.stages[1].entered_by == ("web.product_view", "web.add_to_cart")
    assert {s.id: s.budget for s in purchase.stages if s.budget} == {"consider": timedelta(days=7)}
    assert purchase.stage_of("store.pos_sale") == purchase.stages[3]
    assert [s.id for s in shipped["billing"].stages] == ["invoiced", "paid"]
    assert [s.id for s in shipped["support"].stages] == ["contact", "resolved"]
    assert all(s.budget is None for j in ("billing", "support") for s in shipped[j].stages)


def test_the_shipped_thresholds_are_designs(shipped: dict[str, JourneyMap]) -> None:
    abandoned = rule(shipped, "checkout_abandoned", AbsenceRule)
    assert abandoned.start == ("web.checkout_started",)
    assert abandoned.complete == ("web.checkout_completed", "store.pos_sale")
    assert abandoned.within == timedelta(minutes=30)
    repeat = rule(shipped, "repeat_contact", CountRule)
    assert (repeat.on, repeat.count, repeat.within) == ("support.ticket_opened", 3, timedelta(7))
    sla = rule(shipped, "support_sla_breach", AbsenceRule)
    assert (sla.within, sla.match) == (timedelta(hours=48), "ticket_id")
    assert (sla.start, sla.complete) == (("support.ticket_opened",), ("support.ticket_resolved",))
    for rule_id, on, attribute, op, value in (
        ("low_csat", "support.csat_submitted", "score", "<=", 2),
        ("detractor_nps", "support.nps_submitted", "score", "<=", 6),
        ("call_abandoned", "support.call_abandoned", "wait_seconds", ">=", 120),
        ("long_queue", "store.queue_wait", "wait_seconds", ">=", 600),
    ):
        event = rule(shipped, rule_id, EventRule)
        assert event.on == (on,)
        assert event.when is not None
        assert (event.when.attribute, event.when.op, event.when.value) == (attribute, op, value)
    for rule_id, on in (
        ("payment_failed", "billing.payment_failed"),
        ("ticket_reopened", "support.ticket_reopened"),
    ):
        assert (rule(shipped, rule_id, EventRule).on, rule(shipped, rule_id, EventRule).when) == (
            (on,),
            None,
        )
    loop = rule(shipped, "form_error_loop", CountRule)
    assert (loop.on, loop.count, loop.within, loop.per) == (
        "web.form_error",
        3,
        timedelta(minutes=10),
        "session_id",
    )
    overdue = rule(shipped, "invoice_overdue", AbsenceRule)
    assert (overdue.within, overdue.deadline_attribute, overdue.match) == (
        None,
        "due_date",
        "invoice_id",
    )
    returned = rule(shipped, "return_after_purchase", SequenceRule)
    assert returned.after == ("web.checkout_completed", "store.pos_sale")
    assert returned.then == ("store.return", "billing.refund_issued")
    assert returned.within == timedelta(days=30)
    digital = rule(shipped, "digital_to_support", SequenceRule)
    assert digital.after == (
        "flag:checkout_abandoned",
        "flag:payment_failed",
        "flag:form_error_loop",
    )
    assert (digital.then, digital.within) == (("support.ticket_opened",), timedelta(hours=24))


def test_the_docs_list_every_shipped_rule(shipped: dict[str, JourneyMap]) -> None:
    docs = (ROOT / "docs" / "journey-maps.md").read_text()
    listed = set(re.findall(r"^\| `([a-z_]+)` \| `(?:purchase|billing|support)`", docs, re.M))
    assert listed == set(DEFAULT_RULES)


# --- broken maps ---------------------------------------------------------------------------

VALID = """\
journey: demo
stages:
  - id: browse
    entered_by: [web.page_view]
    budget: 2d
  - id: bought
    entered_by: [web.checkout_completed]
rules:
  - id: abandoned
    kind: absence
    severity: medium
    start: [web.checkout_started]
    complete: [web.checkout_completed]
    within: 30m
  - id: errors
    kind: count
    severity: low
    on: web.form_error
    count: 3
    within: 10m
    per: session_id
  - id: unhappy
    kind: event
    severity: medium
    on: [support.csat_submitted]
    when: {attribute: score, op: "<=", value: 2}
  - id: then_support
    kind: sequence
    severity: high
    after: [flag:abandoned, web.form_error]
    then: [support.ticket_opened]
    within: 24h
  - id: stall
    kind: stage_stall
    severity: low
"""


def write(directory: Path, text: str, name: str = "demo.yaml") -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text(text)
    return path


def broken(path: Path, *, directory: bool = False) -> str:
    with pytest.raises(ConfigurationError) as caught:
        load_maps(path) if directory else load_map(path)
    return str(caught.value)


def test_the_example_map_is_valid(tmp_path: Path) -> None:
    journey = load_map(write(tmp_path, VALID))
    assert [r.id for r in journey.rules] == [
        "abandoned",
        "errors",
        "unhappy",
        "then_support",
        "stall",
    ]


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        pytest.param(
            "within: 30m",
            "within: 30 minutes",
            "rules[0] (abandoned).within, line 14: '30 minutes' is not a duration such as 90s, "
            "30m, 48h or 7d",
            id="bad duration",
        ),
        pytest.param(
            "[web.page_view]",
            "[web.page_veiw]",
            "stages[0] (browse).entered_by[0], line 4: 'web.page_veiw' is not a v1 event type; "
            "web types are: web.page_view",
            id="unknown event type in a stage",
        ),
        pytest.param(
            "on: web.form_error",
            "on: web.form_errors",
            "rules[1] (errors).on, line 18: 'web.form_errors' is not a v1 event type",
            id="unknown event type in a rule",
        ),
        pytest.param(
            "flag:abandoned, web.form_error]",
            "flag:abandoned, web.formerror]",
            "rules[3] (then_support).after[1], line 30: 'web.formerror' is not a v1 event type",
            id="unknown event type in after",
        ),
        pytest.param(
            "    count: 3\n",
            "    count: 3\n    window: 10m\n",
            "rules[1] (errors).window, line 20: unknown key 'window'; a count rule takes id, "
            "severity, description, kind, on, count, within, per",
            id="unknown key",
        ),
        pytest.param(
            "    budget: 2d\n",
            "    budgett: 2d\n",
            "stages[0] (browse).budgett, line 5: unknown key 'budgett' (did you mean budget?)",
            id="misspelt key",
        ),
        pytest.param(
            "    count: 3\n",
            "    count: 3\n    count: 4\n",
            "rules[1].count, line 20, column 5: 'count' is given twice (first on line 19); "
            "keep one",
            id="duplicate key",
        ),
        pytest.param(
            "- id: unhappy",
            "- id: errors",
            "rules[2] (errors).id, line 22: rule id 'errors' is already used by rules[1]",
            id="duplicate rule id",
        ),
        pytest.param(
            "- id: bought",
            "- id: browse",
            "stages[1] (browse).id, line 6: stage id 'browse' is already used by stages[0]",
            id="duplicate stage id",
        ),
        pytest.param(
            "per: session_id",
            "per: visitor",
            "rules[1] (errors).per, line 21: 'visitor' is not a required attribute of "
            "web.form_error; web.form_error requires: session_id, form, error",
            id="bad per attribute",
        ),
        pytest.param(
            "    within: 30m\n",
            "    within: 30m\n    match: order_id\n",
            "rules[0] (abandoned).match, line 15: 'order_id' is not a required attribute of "
            "web.checkout_started; every start and complete type requires: currency",
            id="bad match attribute",
        ),
        pytest.param(
            "attribute: score",
            "attribute: rating",
            "rules[2] (unhappy).when.attribute, line 26: 'rating' is not a required attribute of "
            "support.csat_submitted",
            id="bad when attribute",
        ),
        pytest.param(
            "    within: 30m\n",
            "    deadline_attribute: due_date\n",
            "rules[0] (abandoned).deadline_attribute, line 14: 'due_date' is not a required "
            "attribute of web.checkout_started",
            id="bad deadline attribute",
        ),
        pytest.param(
            "    within: 30m\n",
            "",
            "rules[0] (abandoned), line 9: give exactly one of within (a duration) or "
            "deadline_attribute",
            id="missing deadline",
        ),
        pytest.param(
            "    budget: 2d\n",
            "",
            "rules[4] (stall), line 32: a stage_stall rule needs at least one stage with a budget",
            id="stall without budgets",
        ),
        pytest.param(
            "kind: stage_stall",
            "kind: stall",
            "rules[4] (stall).kind, line 34: 'stall' is not a rule kind: use event, count, "
            "absence, sequence, stage_stall",
            id="unknown rule kind",
        ),
        pytest.param(
            "severity: high",
            "severity: critical",
            "rules[3] (then_support).severity, line 29: Input should be 'low', 'medium' or "
            "'high'; got 'critical'",
            id="unknown severity",
        ),
        pytest.param(
            "flag:abandoned,",
            "flag:Abandoned,",
            "rules[3] (then_support).after[0], line 30: 'flag:Abandoned' is not a flag reference",
            id="malformed flag reference",
        ),
        pytest.param(
            "    count: 3\n",
            "    count: [3\n",
            "line 20, column 11: expected ',' or ']', but got ':' (the file must be YAML)",
            id="YAML syntax error",
        ),
    ],
)
def test_a_broken_map_names_file_key_line_and_problem(
    tmp_path: Path, old: str, new: str, expected: str
) -> None:
    assert old in VALID
    path = write(tmp_path, VALID.replace(old, new, 1))
    message = broken(path)
    assert message.startswith(f"{path}: ")
    assert expected in message
    assert broken(tmp_path, directory=True) == message


def test_every_problem_is_reported_at_once_in_file_order(tmp_path: Path) -> None:
    text = VALID.replace("per: session_id", "per: visitor").replace("within: 30m", "within: 1w")
    lines = broken(write(tmp_path, text)).splitlines()
    assert [line.split(": ", 2)[1] for line in lines] == [
        "rules[0] (abandoned).within, line 14",
        "rules[1] (errors).per, line 21",
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", "empty; a journey map needs journey, stages and rules"),
        ("- web.page_view\n", "expected a mapping of journey, stages and rules, got a list"),
        ("journey: demo\n", "stages: missing; this key is required"),
        ("journey: Demo\nstages: []\n", "journey, line 1: 'Demo' is not an id"),
    ],
)
def test_a_map_without_its_parts(tmp_path: Path, text: str, expected: str) -> None:
    message = broken(write(tmp_path, text))
    assert expected in message


def test_a_dangling_flag_reference_names_file_and_key(tmp_path: Path) -> None:
    write(tmp_path, VALID.replace("flag:abandoned", "flag:abandonned"))
    message = broken(tmp_path, directory=True)
    assert message == (
        f"{tmp_path / 'demo.yaml'}: rules[3] (then_support).after[0], line 30: "
        "'flag:abandonned' names no rule of the loaded maps; did you mean flag:abandoned? "
        "their rule ids are: abandoned, errors, stall, then_support, unhappy"
    )


def test_flag_references_may_name_rules_of_other_maps(tmp_path: Path) -> None:
    for name in ("billing.yaml", "purchase.yaml", "support.yaml"):
        shutil.copy(default_maps_dir() / name, tmp_path / name)
    assert len(load_maps(tmp_path)) == 3
    (tmp_path / "purchase.yaml").unlink()
    message = broken(tmp_path, directory=True)
    assert "support.yaml: rules[6] (digital_to_support).after[0], line " in message
    assert "'flag:checkout_abandoned' names no rule of the loaded maps" in message
    assert "'flag:form_error_loop' names no rule" in message
    assert "'flag:payment_failed' names" not in message


def test_a_journey_name_used_twice(tmp_path: Path) -> None:
    write(tmp_path, VALID, "a.yaml")
    write(tmp_path, VALID, "b.yaml")
    assert broken(tmp_path, directory=True) == (
        f"{tmp_path / 'b.yaml'}: journey, line 1: journey 'demo' is also defined in "
        f"{tmp_path / 'a.yaml'}; names must be unique"
    )


def test_a_directory_without_maps(tmp_path: Path) -> None:
    assert "no journey maps in this directory: it has no *.yaml files" in broken(
        tmp_path, directory=True
    )
    write(tmp_path, VALID, "demo.yml")
    assert "rename demo.yml to .yaml" in broken(tmp_path, directory=True)
    assert "no such directory" in broken(tmp_path / "nowhere", directory=True)
    assert broken(tmp_path / "nowhere.yaml").endswith(
        "nowhere.yaml: no such file; give a journey map (*.yaml)"
    )


def test_yes_and_on_are_text_in_a_map(tmp_path: Path) -> None:
    text = VALID.replace("id: stall", "id: stall\n    description: yes")
    journey = load_map(write(tmp_path, text))
    assert journey.rules[-1].description == "yes"


def test_a_rule_id_used_in_two_maps(tmp_path: Path) -> None:
    for name in ("billing.yaml", "support.yaml"):
        shutil.copy(default_maps_dir() / name, tmp_path / name)
    support = (tmp_path / "support.yaml").read_text()
    (tmp_path / "support.yaml").write_text(support.replace("id: low_csat", "id: payment_failed"))
    message = broken(tmp_path, directory=True)
    assert f"{tmp_path / 'support.yaml'}: rules[3] (payment_failed).id, line 36: " in message
    assert f"rule id 'payment_failed' is also used in {tmp_path / 'billing.yaml'}" in message
