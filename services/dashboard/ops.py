"""The operations page: the stream-health report the API's monitor keeps (the same one
``GET /v1/ops/streams`` answers): status, problems, consumer lag per group and partition,
rates per stage, dead letters, event-time delay per channel and processing latency."""

from __future__ import annotations

from services.dashboard.charts import hbar_chart
from services.dashboard.html import NONE, attrs, card, esc, integer, number, when
from services.ops.report import GroupReport, StreamsReport
from services.reports.charts import PALETTE

__all__ = ["ops_page"]

LAG_BARS = 20


def _status(value: str) -> str:
    return f'<span class="status st-{esc(value.lower())}">{esc(value)}</span>'


def _num(field: str, value: int | float | None, shown: str) -> str:
    return f'<td class="num"{attrs(data_field=field, data_value=value)}>{shown}</td>'


def _rate(field: str, value: float) -> str:
    return _num(field, value, number(value, 2))


def _group(g: GroupReport) -> str:
    members = NONE if g.members is None else integer(len(g.members))
    parts = "".join(
        f"<tr{attrs(data_topic=p.topic, data_partition=p.partition)}>"
        f"<td>{esc(p.topic)}</td>{_num('partition', p.partition, str(p.partition))}"
        f"{_num('committed', p.committed, integer(p.committed))}"
        f"{_num('end', p.end, integer(p.end))}{_num('lag', p.lag, integer(p.lag))}"
        f'<td data-field="status">{_status(p.status)}</td><td>{esc(p.reason)}</td></tr>'
        for p in g.partitions
    )
    return (
        f'<tr{attrs(data_group=g.group)} class="group"><td>{esc(g.group)}</td>'
        f"<td>{esc(g.role)}</td>"
        f'<td data-field="status" data-value="{esc(g.status)}">{_status(g.status)}</td>'
        f"{_num('lag', g.lag, integer(g.lag))}"
        f"{_num('members', None if g.members is None else len(g.members), members)}"
        f"{_num('complete', g.complete, f'{g.complete:.0%}')}</tr>"
        f'<tr class="partitions"><td colspan="6"><details><summary>{len(g.partitions):,} '
        f'partitions</summary><table><thead><tr><th>Topic</th><th class="num">Partition</th>'
        '<th class="num">Committed</th><th class="num">End</th><th class="num">Lag</th>'
        f"<th>Status</th><th>Why</th></tr></thead><tbody>{parts}</tbody></table></details>"
        "</td></tr>"
    )


def _groups(report: StreamsReport) -> str:
    rows = "".join(_group(g) for g in report.groups) or (
        '<tr><td colspan="6">No sample of the consumer groups (is the broker up?).</td></tr>'
    )
    lagging = sorted(
        (
            (p.lag, f"{p.topic}[{p.partition}] {g.role}")
            for g in report.groups
            for p in g.partitions
            if p.lag
        ),
        reverse=True,
    )[:LAG_BARS]
    chart = hbar_chart(
        [(name, float(lag), f"{lag:,}") for lag, name in lagging],
        "Consumer lag per partition",
        PALETTE[1],
        width=900,
        empty="no lag",
        left=360,
    )
    return (
        '<section><h2>Consumer groups</h2><table class="groups"><thead><tr><th>Group</th>'
        '<th>Role</th><th>Status</th><th class="num">Lag</th><th class="num">Members</th>'
        f'<th class="num">Window</th></tr></thead><tbody>{rows}</tbody></table>'
        f"<h3>Lag per partition</h3>{chart}</section>"
    )


def _stages(report: StreamsReport) -> str:
    rows = "".join(
        f"<tr{attrs(data_stage=s.stage)}><td>{esc(s.stage)}</td><td>{esc(s.group)}</td>"
        + _rate("input_per_second", s.input_per_second)
        + _rate("output_per_second", s.output_per_second)
        + _rate("consumed_per_second", s.consumed_per_second)
        + _num("lag", s.lag, integer(s.lag))
        + _num("input_records", s.input_records, integer(s.input_records))
        + _num("output_records", s.output_records, integer(s.output_records))
        + "</tr>"
        for s in report.stages
    )
    rows = rows or '<tr><td colspan="8">No sample yet.</td></tr>'
    return (
        '<section><h2>Stages</h2><table class="stages"><thead><tr><th>Stage</th><th>Group</th>'
        '<th class="num">In /s</th><th class="num">Out /s</th><th class="num">Consumed /s</th>'
        '<th class="num">Lag</th><th class="num">Records in</th><th class="num">Records out'
        f"</th></tr></thead><tbody>{rows}</tbody></table></section>"
    )


def _dead_letters(report: StreamsReport) -> str:
    d = report.dead_letters
    reasons = "".join(
        f"<tr{attrs(data_reason=reason)}><td>{esc(reason)}</td>{_num('count', n, integer(n))}</tr>"
        for reason, n in d.reasons.items()
    )
    recent = "".join(
        f"<tr{attrs(data_letter=x.id)}><td>{when(x.at)}</td><td>{esc(x.stage)}</td>"
        f"<td>{esc(x.reason)}</td><td>{esc(x.event_id) if x.event_id else NONE}</td>"
        f"<td>{esc(x.summary)}</td></tr>"
        for x in reversed(d.recent)
    )
    return (
        '<section class="dead-letters"><h2>Dead letters</h2><div class="cards">'
        + card("dead letters in all", integer(d.total), d.total, "dlq_total")
        + card("in the window", integer(d.in_window), d.in_window, "dlq_in_window")
        + card("per second", number(d.per_second, 3), d.per_second, "dlq_per_second")
        + "</div>"
        + (
            '<h3>Reasons (recent)</h3><table class="reasons"><thead><tr><th>Reason</th>'
            f'<th class="num">Dead letters</th></tr></thead><tbody>{reasons}</tbody></table>'
            if reasons
            else ""
        )
        + (
            '<h3>Newest</h3><table class="recent"><thead><tr><th>When (UTC)</th><th>Stage</th>'
            "<th>Reason</th><th>Event</th><th>What</th></tr></thead>"
            f"<tbody>{recent}</tbody></table>"
            if recent
            else ""
        )
        + "</section>"
    )


def _event_time(report: StreamsReport) -> str:
    rows = "".join(
        f"<tr{attrs(data_channel=c.channel)}><td>{esc(c.channel)}</td><td>{when(c.reached)}</td>"
        f"{_num('delay_seconds', c.delay_seconds, number(c.delay_seconds))}"
        f"<td>{when(c.reported_at)}</td></tr>"
        for c in report.event_time
    )
    chart = hbar_chart(
        [(c.channel, c.delay_seconds, f"{c.delay_seconds:,.0f} s") for c in report.event_time],
        "Event-time delay per channel",
        PALETTE[3],
        empty="no watermark seen yet",
    )
    latency = "".join(
        f"<tr{attrs(data_stage=x.stage)}><td>{esc(x.stage)}</td>"
        f"{_num('samples', x.samples, integer(x.samples))}"
        f"{_num('p50_seconds', x.p50_seconds, number(x.p50_seconds, 3))}"
        f"{_num('p95_seconds', x.p95_seconds, number(x.p95_seconds, 3))}"
        f"{_num('max_seconds', x.max_seconds, number(x.max_seconds, 3))}</tr>"
        for x in report.latency
    )
    return (
        '<section class="pair"><div><h2>Event-time delay per channel</h2>'
        f"{chart}"
        + (
            '<table class="delays"><thead><tr><th>Channel</th><th>Reached</th>'
            '<th class="num">Delay (s)</th><th>Reported</th></tr></thead>'
            f"<tbody>{rows}</tbody></table>"
            if rows
            else ""
        )
        + '</div><div><h2>Processing latency</h2><table class="latency"><thead><tr>'
        '<th>Stage</th><th class="num">Samples</th><th class="num">p50 (s)</th>'
        '<th class="num">p95 (s)</th><th class="num">max (s)</th></tr></thead>'
        f"<tbody>{latency or '<tr><td colspan=5>No samples yet.</td></tr>'}</tbody></table>"
        "</div></section>"
    )


def ops_page(report: StreamsReport | None) -> list[str]:
    if report is None:
        return [
            '<h1>Stream health <span class="status" data-metric="status" data-value="">'
            "no sample yet</span></h1>",
            '<p class="note">The API takes its first stream-health sample when it starts; '
            'reload in a few seconds. <a href="/ui/ops">Reload</a></p>',
        ]
    problems = "".join(f"<li>{esc(p)}</li>" for p in report.problems)
    store = report.store
    w = report.window
    return [
        f'<h1>Stream health <span class="status st-{esc(report.status)}" data-metric="status" '
        f'data-value="{esc(report.status)}">{esc(report.status)}</span></h1>',
        f'<p class="sub"{attrs(data_sampled_at=report.sampled_at.isoformat())}>Sampled '
        f"{when(report.sampled_at)}; window of {w.samples:,} of {w.size:,} samples over "
        f"{w.seconds:,.0f} s, one every {w.interval_seconds:g} s. "
        '<a href="/ui/ops">Refresh</a></p>',
        f'<ul class="problems">{problems}</ul>' if problems else "",
        '<div class="cards">'
        + card(
            "broker",
            "reachable" if report.broker.reachable else "unreachable",
            report.broker.reachable,
            "broker",
            f"<br>{esc(report.broker.url)}",
        )
        + card(
            "CRM store",
            "reachable" if store is not None and store.reachable else "unreachable",
            None if store is None else store.reachable,
            "store",
            f"<br>revision {esc(store.revision or '-')}" if store is not None else "",
        )
        + card("sink backlog", integer(report.sink_backlog), report.sink_backlog, "sink_backlog")
        + "</div>",
        _groups(report),
        _stages(report),
        _dead_letters(report),
        _event_time(report),
    ]
