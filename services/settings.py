"""The one settings object, read from ``TOUCHSTREAM_*`` environment variables.

Every field documents itself; ``touchstream config docs`` renders them into
``docs/configuration.md`` and a test keeps that page in sync.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, get_args

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_core import ErrorDetails
from pydantic_settings import BaseSettings, SettingsConfigDict

from services.access.tokens import parse_static_tokens
from services.errors import ConfigurationError

ENV_PREFIX = "TOUCHSTREAM_"
LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR"]


@dataclass(frozen=True, slots=True)
class Topics:
    """Names of the pipeline's Kafka topics (DESIGN.md §1)."""

    raw: str
    valid: str  # validated, awaiting identity: ONE partition, so identity decisions are ordered
    resolved: str
    identity: str  # merges and refused merges, for the CRM store and review
    dlq: str
    transitions: str
    flags: str

    def all(self) -> tuple[str, ...]:
        return (
            self.raw,
            self.valid,
            self.resolved,
            self.identity,
            self.dlq,
            self.transitions,
            self.flags,
        )


class Settings(BaseSettings):
    """Touchstream configuration. Every field maps to ``TOUCHSTREAM_<FIELD NAME>``."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, frozen=True, extra="ignore", validate_default=True
    )

    broker_url: str | None = Field(
        default=None,
        description="Kafka bootstrap servers, e.g. `kafka://kafka-1:9092,kafka-2:9092` or "
        "`localhost:9092`. Unset: `up`/`demo` start the embedded broker, and client "
        "commands (`emit`, `dlq`) use the one a running `touchstream up` announced.",
    )
    database_url: SecretStr | None = Field(
        default=None,
        description="SQLAlchemy URL of the CRM store, e.g. "
        "`postgresql+psycopg2://user:pass@db:5432/touchstream`. Unset: a SQLite file "
        "`touchstream.db` in the data directory (embedded mode).",
    )
    data_dir: Path = Field(
        default=Path(".touchstream"),
        description="Where the embedded stack keeps its SQLite store, logs and run state.",
    )
    partitions: int = Field(
        default=4,
        ge=1,
        le=1024,
        description="Partitions per pipeline topic when Touchstream creates the topics. "
        "Bounds how many workers can share the load.",
    )
    replication_factor: int = Field(
        default=1,
        ge=1,
        le=16,
        description="Replication factor of topics Touchstream creates (3 on a production cluster).",
    )
    topic_prefix: str = Field(
        default="",
        pattern=r"^[A-Za-z0-9._-]*$",
        description="Prefix for every topic name, to run several pipelines on one cluster.",
    )
    raw_retention_hours: int = Field(
        default=168,
        ge=1,
        description="Retention of the raw and resolved topics, in hours.",
    )
    dlq_retention_hours: int = Field(
        default=720,
        ge=1,
        description="Retention of the dead-letter and identity-merge topics, in hours: long enough "
        "to fix and replay, and to review merges.",
    )
    app_id: str = Field(
        default="touchstream",
        pattern=r"^[A-Za-z0-9._-]+$",
        description="Faust application id; also the Kafka consumer group of the workers.",
    )
    table_store: str = Field(
        default="memory://",
        description="Faust table store. Only `memory://` works: tables are rebuilt from their "
        "changelog topics when a worker starts. faust-streaming 0.15's `rocksdb://` store "
        "files each write under the partition of the event being processed, and the worker "
        "also writes from timers and batches (deploy/README.md, Table store).",
    )
    worker_batch_size: int = Field(
        # at 100,000 events 1,000 gave 916-953 events/s end to end, 4,000 gave 1,051-1,079;
        # at 500,000, 880 against 906, one run each (bench/README.md). A batch larger than
        # worker_stream_buffer would wait for the batch timeout
        default=4000,
        ge=1,
        description="Most events an agent takes from its stream at once.",
    )
    worker_stream_buffer: int = Field(
        # Faust's default. 100,000-event A/B: 16,384 gave 1,055-1,484 events/s end to end
        # against 895-1,111 (paired runs); at 500,000 events 845 against 855-857, peak RSS
        # 381 against 341-344 MiB; p99 at 2,000/s 22-40 s either way (bench/README.md)
        default=4096,
        ge=1,
        description="Records fetched for an agent that wait in its stream's buffer. When one "
        "agent's buffer is full, the worker's consumer waits before it hands records to any "
        "agent, so a small buffer on the busiest topic can starve the others (identity behind "
        "validate while it reads a backlog). Each waiting record is held in memory.",
    )
    worker_batch_timeout: float = Field(
        default=0.05,
        gt=0,
        description="Seconds an agent waits to fill a batch before it handles what it has.",
    )
    worker_fetch_max_wait_ms: int = Field(
        # Faust's own is 1,500. At 200 events/s, where one worker keeps up, each hop's p99 was
        # 0.6-0.9 s with it (bench/README.md, Latency by hop)
        default=100,
        ge=1,
        le=10000,
        description="Milliseconds the broker may hold the worker's fetch request when it has "
        "no new records for it. The consumer keeps one fetch in flight per broker, and a "
        "partition whose records are still being handed to the agents is left out of it, so "
        "records that arrive there meanwhile wait for that fetch to return: up to this long. "
        "Lower: less latency between the stages, a few more (empty) fetches when idle.",
    )
    producer_linger_ms: int = Field(
        default=5,
        ge=0,
        le=1000,
        description="Milliseconds the worker's producer waits to fill a batch before sending. "
        "0 sends each record at once: many tiny requests, a fraction of the throughput.",
    )
    crm_sink_enabled: bool = Field(
        default=True,
        description="Run the CRM sink inside each worker: it writes resolved events, identity "
        "merges, journey transitions and friction flags into the store (its own consumer "
        "group, `<app_id>-crm-sink`). Off: run `touchstream sink` processes instead.",
    )
    crm_sink_batch_size: int = Field(
        # 5,000 until 2026-11-24; 20,000 wrote 18,671 rows/s against 11,436 in bench/crm.py
        # (bench/README.md, CRM store)
        default=20_000,
        ge=1,
        le=100_000,
        description="Most records the CRM sink reads and writes as one batch (its merges, then "
        "a transaction a writer). A batch's statements cost about the same whatever its size, "
        "so larger batches write more rows a second when the sink is behind; a quiet sink "
        "writes what came within `TOUCHSTREAM_CRM_SINK_MAX_DELAY` anyway.",
    )
    crm_sink_writers: int = Field(
        default=2,
        ge=1,
        le=16,
        description="Connections the CRM sink writes a large batch through at once on "
        "PostgreSQL, each in its own transaction with a share of the batch's customers (the "
        "merges go first). 2 keeps a 2-core machine busy; SQLite always uses one.",
    )
    crm_sink_max_delay: float = Field(
        default=0.5,
        gt=0,
        le=60,
        description="Seconds the CRM sink waits to fill a batch before writing what it has.",
    )
    crm_sink_max_backoff: float = Field(
        default=30.0,
        ge=0.1,
        le=600,
        description="Longest pause, in seconds, between retries while the store is unreachable "
        "(the sink waits and retries; it never skips records).",
    )
    consumer_session_timeout: float = Field(
        default=10.0,
        ge=6.0,
        le=300.0,
        description="Seconds without a heartbeat before the group drops a worker and hands its "
        "partitions to others. Lower recovers faster from a dead worker; a new worker also "
        "joins faster (Tansu completes a first join after about half of it). Apache Kafka "
        "accepts 6 to 300 by default.",
    )
    allowed_lateness: float = Field(
        default=300.0,
        ge=0,
        description="Seconds an event may arrive after later events of its channel and still "
        "count as in order; deadlines (abandonment, SLA, overdue, stalls) wait this long.",
    )
    too_late_after: float = Field(
        default=86400.0,
        ge=0,
        description="Seconds behind the watermark (already net of the allowed lateness) "
        "after which an event is not applied to journeys: a redelivery of old traffic, or a "
        "feed that broke the contract by far. It is counted and logged, and the CRM store "
        "still records it; events less late are applied as late events.",
    )
    identity_max_emails: int = Field(
        default=5,
        ge=1,
        description="Most emails one profile may hold; a link or merge beyond it is refused "
        "and recorded (a shared device or a data error, not a person).",
    )
    identity_max_phones: int = Field(
        default=5, ge=1, description="Most phones one profile may hold."
    )
    identity_max_anonymous_ids: int = Field(
        default=200, ge=1, description="Most anonymous (device) ids one profile may hold."
    )
    identity_max_loyalty_ids: int = Field(
        default=5, ge=1, description="Most loyalty card ids one profile may hold."
    )
    identity_max_account_ids: int = Field(
        default=10, ge=1, description="Most billing account ids one profile may hold."
    )
    watermark_idle_timeout: float = Field(
        default=10.0,
        gt=0,
        description="Seconds after which a raw partition that delivered nothing stops holding "
        "event time back, if it is caught up (no records past the workers' committed "
        "offset). Until then, deadlines wait for every partition, so one read ahead of "
        "another raises no false absence flag.",
    )
    deadline_check_interval: float = Field(
        default=1.0,
        gt=0,
        description="Seconds between the worker's checks for deadlines that event time passed.",
    )
    ops_sample_interval: float = Field(
        default=5.0,
        gt=0,
        le=3600,
        description="Seconds between the API's stream-health samples (consumer lag, rates, "
        "latency; docs/operations.md).",
    )
    ops_window: int = Field(
        default=10,
        ge=2,
        le=1000,
        description="Samples in the stream-health evaluation window: a group is judged on the "
        "lag's trend across them, never on one sample.",
    )
    ops_tail_records: int = Field(
        default=200,
        ge=1,
        le=100_000,
        description="Most new records per partition a stream-health sample reads of the "
        "resolved, transitions and dead-letter topics (latency, event time, recent dead "
        "letters).",
    )
    embedded_broker_host: str = Field(
        default="127.0.0.1",
        description="Interface the embedded broker listens on.",
    )
    embedded_broker_port: int = Field(
        default=19092,
        ge=0,
        le=65535,
        description="Port of the embedded broker; 0 picks a free port.",
    )
    api_host: str = Field(default="127.0.0.1", description="Interface the HTTP API listens on.")
    api_port: int = Field(
        default=8080,
        ge=0,
        le=65535,
        description="Port of the HTTP API; 0 picks a free port.",
    )
    ingest_keys: SecretStr | None = Field(
        default=None,
        description="Static source keys as `name:key,name:key` (keys of 16+ characters), for "
        "tests and containers; `touchstream sources add NAME` creates keys in the store.",
    )
    api_tokens: SecretStr | None = Field(
        default=None,
        description="Static login tokens of the read API and dashboard as "
        "`name:role:token,name:role:token` (roles `viewer`, `operator`, `admin`; tokens of 16+ "
        "characters), for tests and containers; `touchstream users add NAME --role R` creates "
        "users in the store (docs/access.md).",
    )
    ingest_max_events: int = Field(
        default=1000,
        ge=1,
        description="Most events one HTTP ingestion request may carry (413 above).",
    )
    ingest_max_bytes: int = Field(
        default=5 * 1024 * 1024,
        ge=1024,
        description="Largest HTTP ingestion request body in bytes (413 above).",
    )
    ingest_ack_timeout: float = Field(
        default=10.0,
        gt=0,
        description="Seconds the API waits for the broker to acknowledge accepted events before "
        "answering 503 (with Retry-After) instead.",
    )
    segment_mapping_file: Path | None = Field(
        default=None,
        description="YAML file mapping Segment track event names to v1 event types; unset: the "
        "packaged default (docs/segment.md).",
    )
    journey_maps_dir: Path | None = Field(
        default=None,
        description="Directory of journey maps (`*.yaml`: stages and friction rules, "
        "docs/journey-maps.md); unset: the shipped `journey_maps/`. Check it with "
        "`touchstream maps validate`.",
    )
    startup_timeout: float = Field(
        default=60.0,
        gt=0,
        description="Seconds to wait for the broker, worker or API to come up before failing.",
    )
    log_level: LogLevel = Field(
        default="WARNING",
        description="Log level of the worker and the API: DEBUG, INFO, WARNING or ERROR.",
    )

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    @field_validator("table_store")
    @classmethod
    def _memory_tables(cls, value: str) -> str:
        if not value.startswith("memory://"):
            raise ValueError(
                f"{value!r} is not supported: use memory:// (tables are rebuilt from their "
                "changelogs at start). faust-streaming 0.15's rocksdb:// store cannot hold "
                "the tables the worker writes from timers and batches; see deploy/README.md"
            )
        return value

    @field_validator("api_tokens")
    @classmethod
    def _static_tokens(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            parse_static_tokens(value.get_secret_value())
        return value

    @property
    def topics(self) -> Topics:
        p = self.topic_prefix
        return Topics(
            raw=f"{p}touchpoints.raw",
            valid=f"{p}touchpoints.valid",
            resolved=f"{p}touchpoints.resolved",
            identity=f"{p}identity.merges",
            dlq=f"{p}touchpoints.dlq",
            transitions=f"{p}journey.transitions",
            flags=f"{p}friction.flags",
        )

    @property
    def run_dir(self) -> Path:
        return self.data_dir / "run"

    @property
    def log_dir(self) -> Path:
        return self.data_dir / "logs"

    def to_env(self) -> dict[str, str]:
        """These settings as ``TOUCHSTREAM_*`` variables, for a child process (secrets included)."""
        env = {}
        for name in type(self).model_fields:
            value = getattr(self, name)
            if value is None:
                continue
            if isinstance(value, SecretStr):
                value = value.get_secret_value()
            env[env_name(name)] = str(value)
        return env

    def store_url(self) -> str:
        """The CRM store's SQLAlchemy URL (secret included): PostgreSQL or embedded SQLite."""
        if self.database_url is not None:
            return self.database_url.get_secret_value()
        return f"sqlite:///{(self.data_dir / 'touchstream.db').resolve()}"


def bootstrap_servers(broker_url: str) -> list[str]:
    """Bootstrap list from ``kafka://a:9092,b:9092``, ``a:9092;b:9092`` or bare ``host:port``."""
    servers = []
    for part in broker_url.replace(";", ",").split(","):
        part = part.strip()
        if not part:
            continue
        if "://" in part:
            part = part.split("://", 1)[1]
        servers.append(part.rstrip("/"))
    return servers


def env_name(field: str) -> str:
    return f"{ENV_PREFIX}{field.upper()}"


def _problem(error: ErrorDetails) -> str:
    """One validation error as ``VARIABLE=value: why``; a secret's value is not repeated."""
    field = str(error["loc"][0]) if error["loc"] else ""
    known = Settings.model_fields.get(field)
    secret = known is not None and SecretStr in get_args(known.annotation)
    shown = "****" if secret else repr(error["input"])
    return f"{env_name(field) if field else 'settings'}={shown}: {error['msg']}"


def load_settings(**overrides: Any) -> Settings:
    """Settings from the environment with ``overrides`` (those not None) on top; a bad value
    becomes a :class:`ConfigurationError` naming its variable."""
    given = {key: value for key, value in overrides.items() if value is not None}
    try:
        return Settings(**given)
    except ValidationError as error:
        problems = "; ".join(_problem(e) for e in error.errors(include_url=False))
        raise ConfigurationError(
            f"invalid configuration: {problems}. See docs/configuration.md."
        ) from None
