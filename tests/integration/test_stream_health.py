"""Stream health on a real broker and real workers: ``/metrics``, ``GET /v1/ops/streams``,
``/ready`` and ``touchstream health`` as operations use them."""

from __future__ import annotations

import json
import time
import urllib.request
from typing import Any

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample
from pydantic import SecretStr

from services.api.app import create_app
from services.embedded.process import ManagedProcess, free_port
from services.emit import emit_lines
from services.kafka import ensure_topics, producer
from services.ops.monitor import StreamMonitor
from services.ops.probe import BrokerProbe
from services.ops.tail import Tail
from services.settings import Settings
from tests.support.access import API_TOKENS, VIEWER_TOKEN, bearer
from tests.support.cli import cli_env, run_cli
from tests.support.events import dumps, example, example_types
from tests.support.services import api_settings, start_api, start_worker

pytestmark = pytest.mark.broker


def _events(tag: str) -> list[bytes]:
    """One valid event of every type, ids unique to ``tag``."""
    return [dumps(example(kind, event_id=f"{tag}-{kind}")) for kind in example_types()]


BROKEN = [
    b'{"event_id": "broken-json", ',  # invalid_json
    dumps(example("web.page_view", event_id="naive-time", occurred_at="2026-11-12T10:00:00")),
]


def _emit(settings: Settings, payloads: list[bytes]) -> None:
    result = emit_lines(settings.broker_url or "", settings.topics.raw, enumerate(payloads, 1))
    assert result.failed == []


def _get(url: str, token: str | None = VIEWER_TOKEN) -> tuple[int, bytes]:
    headers = bearer(token) if token else {}
    try:
        request = urllib.request.Request(url, headers=headers)  # noqa: S310 - local test URL
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def _samples(metrics: str) -> dict[str, list[Sample]]:
    """Every sample of the exposition by family name (the parser must accept all of it)."""
    return {f.name: list(f.samples) for f in text_string_to_metric_families(metrics)}


def _value(samples: list[Sample], name: str, **labels: str) -> float:
    found = [s.value for s in samples if s.name == name and s.labels.items() >= labels.items()]
    assert len(found) == 1, (name, labels, samples)
    return found[0]


def test_metrics_and_the_streams_report_show_lag_rates_dead_letters_and_latency(
    settings: Settings, worker: ManagedProcess
) -> None:
    configured = api_settings(
        settings, ops_sample_interval=1.0, ops_window=6, api_tokens=SecretStr(API_TOKENS)
    )
    api, url = start_api(configured)
    try:
        deadline = time.monotonic() + 15
        while _get(f"{url}/health", token=None)[0] != 200:
            assert time.monotonic() < deadline, api.tail(40)
            time.sleep(0.2)
        assert _get(f"{url}/v1/ops/streams", token=None)[0] == 401  # the read API needs a token
        while _get(f"{url}/v1/ops/streams")[0] != 200:  # the baseline sample, before any event
            assert time.monotonic() < deadline, api.tail(40)
            time.sleep(0.2)
        valid = _events("m")
        _emit(settings, valid + BROKEN)

        def settled(report: dict[str, Any]) -> bool:
            latency = {s["stage"]: s["samples"] for s in report["latency"]}
            return bool(
                report["status"] == "healthy"
                and _raw_lag(settings, report) == 0
                and report["dead_letters"]["total"] == len(BROKEN)
                and latency["identity"] == len(valid)
                and latency["journey"] > 0
                and report["sink_backlog"] == 0
            )

        deadline = time.monotonic() + 30
        while not settled(report := json.loads(_get(f"{url}/v1/ops/streams")[1])):
            assert time.monotonic() < deadline, (report, api.tail(40))
            time.sleep(0.5)

        groups = {g["group"]: g for g in report["groups"]}
        assert set(groups) == {settings.app_id, f"{settings.app_id}-crm-sink"}
        assert groups[settings.app_id]["status"] == "OK"
        assert len(groups[settings.app_id]["members"]) == 1
        assert {p["topic"] for p in groups[settings.app_id]["partitions"]} == {
            settings.topics.raw,
            settings.topics.valid,
            settings.topics.resolved,
        }
        stages = {s["stage"]: s for s in report["stages"]}
        assert list(stages) == ["validate", "identity", "journey", "sink"]
        assert stages["validate"]["input_records"] == len(valid) + len(BROKEN)
        assert report["dead_letters"]["reasons"] == {"invalid_json": 1, "contract_violation": 1}
        assert {d["event_id"] for d in report["dead_letters"]["recent"]} == {
            "broken-json",
            "naive-time",
        }
        assert {c["channel"] for c in report["event_time"]} == {
            "web",
            "store",
            "billing",
            "support",
        }
        assert all(c["delay_seconds"] > 0 for c in report["event_time"])  # examples are in the past
        assert report["store"]["reachable"] is True

        status, body = _get(f"{url}/metrics")
        assert status == 200
        families = _samples(body.decode())
        workers, sink = settings.app_id, f"{settings.app_id}-crm-sink"
        lag = families["touchstream_consumer_lag_records"]
        assert (
            _value(lag, lag[0].name, group=workers, topic=settings.topics.raw, partition="0") == 0
        )
        assert {s.labels["group"] for s in lag} == {workers, sink}
        status_of = families["touchstream_consumer_group_status"]
        assert _value(status_of, status_of[0].name, group=workers, status="OK") == 1
        assert _value(status_of, status_of[0].name, group=workers, status="STALLED") == 0
        # rates: gauges over the window, and counters of the records since sampling began
        rates = families["touchstream_stage_input_records_per_second"]
        assert {s.labels["stage"] for s in rates} == {"validate", "identity", "journey", "sink"}
        inputs = families["touchstream_stage_input_records"]
        outputs = families["touchstream_stage_output_records"]
        sent = len(valid) + len(BROKEN)
        assert _value(inputs, "touchstream_stage_input_records_total", stage="validate") == sent
        assert _value(outputs, "touchstream_stage_output_records_total", stage="validate") == sent
        assert "touchstream_stage_output_records_per_second" in families
        # dead letters: the rate, the counter, and the reasons of the existing gauge
        assert "touchstream_dead_letters_per_second" in families
        dead = families["touchstream_dead_lettered_records"]
        assert _value(dead, "touchstream_dead_lettered_records_total") == len(BROKEN)
        by_reason = families["touchstream_dead_letters"]
        assert _value(by_reason, "touchstream_dead_letters", reason="invalid_json") == 1
        # processing latency: one observation per event the identity stage resolved
        latency = families["touchstream_processing_latency_seconds"]
        count = _value(latency, "touchstream_processing_latency_seconds_count", stage="identity")
        total = _value(latency, "touchstream_processing_latency_seconds_sum", stage="identity")
        assert count == len(valid)
        assert 0 <= total / count < 30
        assert _value(latency, "touchstream_processing_latency_seconds_count", stage="journey") > 0
        assert _value(families["touchstream_stream_health"], "touchstream_stream_health") == 0
        assert _value(families["touchstream_broker_up"], "touchstream_broker_up") == 1
        assert _value(families["touchstream_store_up"], "touchstream_store_up") == 1
        delay = families["touchstream_event_time_delay_seconds"]
        assert _value(delay, "touchstream_event_time_delay_seconds", channel="web") > 0
        assert (
            _value(families["touchstream_sink_backlog_records"], "touchstream_sink_backlog_records")
            == 0
        )

        status, body = _get(f"{url}/ready")
        assert (status, json.loads(body)["store"]) == (200, "reachable")
    finally:
        api.stop()


def _health(settings: Settings, *options: str) -> tuple[int, dict[str, Any]]:
    env = cli_env(settings.data_dir, **settings.to_env())
    done = run_cli("health", "--json", *options, env=env, timeout=60)
    assert done.stdout, done.stderr
    return done.returncode, json.loads(done.stdout)


def _raw_lag(settings: Settings, report: dict[str, Any]) -> int:
    workers = next(g for g in report["groups"] if g["group"] == settings.app_id)
    return sum(p["lag"] for p in workers["partitions"] if p["topic"] == settings.topics.raw)


def _settle(settings: Settings, timeout: float) -> None:
    """Wait until the workers committed all they read of raw and valid and the sink has no
    backlog (sampled in-process: cheaper than ``health``, which then judges once)."""
    monitor = StreamMonitor(settings, settings.broker_url or "", window=2)
    deadline = time.monotonic() + timeout
    try:
        while True:
            report = monitor.sample()
            workers = next(g for g in report.groups if g.group == settings.app_id)
            behind = sum(p.lag for p in workers.partitions if p.topic != settings.topics.resolved)
            if behind == 0 and report.sink_backlog == 0:
                return
            assert time.monotonic() < deadline, report.model_dump_json(indent=1)
            time.sleep(1.0)  # gently: the embedded broker is busy enough with the worker
    finally:
        monitor.close()


def _caught_up(settings: Settings, timeout: float) -> dict[str, Any]:
    """The report once ``health`` exits 0 with nothing left to read on the raw topic."""
    _settle(settings, timeout)
    deadline = time.monotonic() + timeout
    while True:
        code, report = _health(settings)
        if (code == 0 and _raw_lag(settings, report) == 0) or time.monotonic() > deadline:
            assert (code, report["problems"], _raw_lag(settings, report)) == (0, [], 0), report
            return report
        time.sleep(0.5)


def test_health_is_down_while_the_worker_is_stopped_and_healthy_again_once_it_caught_up(
    settings: Settings,
) -> None:
    """The events for the stopped worker are sent in one go: a worker restarted after several
    separate emissions while it was down has been seen, on the embedded broker, to leave a
    raw partition uncommitted (and ``health`` rightly says STALLED then). With one emission,
    the restarted worker once processed raw offset 2 but not 1 (1 run in 12: Faust's flow
    control dropped it, see KeepQueuedFlowControl); should any record still go missing,
    the worker reads its partition again after 20 s (StallWatch), hence the 60 s."""
    ensure_topics(settings, settings.broker_url or "")
    worker = start_worker(settings)
    try:
        _emit(settings, _events("a"))
        _settle(settings, timeout=20)
    finally:
        worker.stop()

    # the lag grows from 0 while nobody consumes (one emission: see the test's docstring)
    _emit(settings, _events("b") + _events("c"))
    code, report = _health(settings, "--samples", "3", "--interval", "0.5")
    workers = next(g for g in report["groups"] if g["group"] == settings.app_id)
    assert code in (1, 2), report
    assert workers["status"] in ("STALLED", "STOPPED")
    assert (
        f"group {settings.app_id} is {workers['status']} (lag {workers['lag']})"
        in (report["problems"])
    )
    assert _raw_lag(settings, report) == 2 * len(example_types())
    validate = next(s for s in report["stages"] if s["stage"] == "validate")
    assert validate["lag"] == 2 * len(example_types())

    worker = start_worker(settings, "worker-2")
    try:
        report = _caught_up(settings, timeout=60)
        assert report["status"] == "healthy"
        assert {g["status"] for g in report["groups"]} == {"OK"}
    finally:
        worker.stop()


def test_a_transition_is_timed_by_its_event_read_in_the_same_sample(
    settings: Settings, broker: str
) -> None:
    """The probe fetches the transitions topic first (its topic order), yet feeds the tails in
    their own order: resolved before transitions, so each transition finds its event."""
    ensure_topics(settings, broker)
    t = settings.topics
    ids = [f"same-sample-{n}" for n in range(20)]
    send = producer(broker)
    for event_id in ids:
        record = {"event": {"event_id": event_id}, "received_at": "2026-11-20T12:00:00Z"}
        send.send(t.resolved, dumps(record), key=b"c")
        send.send(t.transitions, dumps({"event_id": event_id, "to_stage": "browsing"}), key=b"c")
    send.flush()
    send.close()
    tail = Tail(lateness=0)
    probe = BrokerProbe(
        broker,
        [t.transitions, t.resolved],
        {},
        tails={t.resolved: tail.resolved, t.transitions: tail.transition},
        tail_records=1000,
    )
    try:
        probe.snapshot()
    finally:
        probe.close()
    observed = tail.drain()
    assert len(observed["identity"]) == len(ids)
    assert len(observed["journey"]) == len(ids)


def test_health_is_down_without_a_broker(settings: Settings) -> None:
    code, report = _health(settings, "--broker", f"127.0.0.1:{free_port()}")
    assert code == 2
    assert report["status"] == "down"
    assert report["broker"]["reachable"] is False
    assert report["problems"][0].startswith("broker: no Kafka broker answered")


def test_ready_is_503_while_the_store_does_not_answer(settings: Settings, broker: str) -> None:
    ensure_topics(settings, broker)
    nowhere = f"postgresql+psycopg2://ts:ts@127.0.0.1:{free_port()}/ts"
    app = create_app(settings.model_copy(update={"database_url": SecretStr(nowhere)}), broker)
    ready = TestClient(app).get("/ready")
    assert ready.status_code == 503
    assert ready.json()["store"] == "unreachable"
    assert "the CRM store does not answer" in ready.json()["detail"]
