"""The console's store: the topics' campaign facts in an embedded DuckDB file.

The console's pages ask per-rule questions over days and months of decisions — counts by
outcome, channel, reason, day and hour, a funnel joined to the channels' reports — and ask
them every few seconds. Reading the topics again for every page (what ``kairos report``
does) takes minutes on a real history; an analytical database answers in milliseconds.
DuckDB is embedded (one file, no server to run beside the console), columnar, and speaks
SQL, so the aggregation lives in SQL here and the figures that derive from the counts
(rates, uplift and its interval) come from :func:`rules.offline.report.measure`, exactly
as ``kairos report`` derives them.

**What it keeps.** Only what the pages need, one table per kind of record:

* ``decisions``: rule, version, outcome, reason code, channel, the decision's time, for
  every decision read;
* ``decision_details``: for the customer page, the reason's text, the evidence (every value
  the rule's conditions read, as JSON), the trigger event ids and when a deferred contact
  is due again, of each customer's latest :data:`DECISIONS_PER_CUSTOMER` decisions only
  (by ``decided_at``): bounded per customer, whatever the history's length;
* ``conversions``: one row per (rule, group, decision), the unit ``kairos report`` counts;
* ``feedback``: each channel report's status and rank, for every action's furthest status;
* ``profiles``: each customer's time zone only (the local hour of a contact);
* ``rule_versions`` and ``bundles``: each deployed ruleset version's rules, as written;
* ``offsets``: the next offset to read of each (topic, partition); ``meta``: counters.

**Exactly once, per batch.** :meth:`ConsoleStore.write` writes a batch of records and the
offsets after them in one transaction. A console that stops — cleanly or not — restarts
from its file where the last committed batch ended and reads the rest from Kafka
(:mod:`app.console.ingest`): no record is lost, and none counts twice. Records that do
arrive twice (a worker re-delivering after a failover) count once anyway, as in
:func:`rules.offline.report.build_report`: by decision id, by feedback id, and by (rule,
group, decision) for conversions; a re-sent record replaces the earlier one but keeps its
place in arrival order, as a dict keeps a key's first place.

**Privacy.** The file never holds a customer id, nor any identifier a channel system or
a worker gave a record: the customer id, decision id, action id and feedback id are each
kept as a keyed hash (HMAC-SHA256 with the secret the constructor takes, 128 bits), which
still joins and de-duplicates but cannot be reversed, or matched against the topics,
without the secret. The file records a check value of the secret (an HMAC of a fixed
label), so a console started with another secret refuses the file instead of silently
keying new records apart from the old ones. Decision details are looked up by the
customer's hash (:meth:`ConsoleStore.customer_decisions`); the evidence can hold personal
data (an amount, a merchant), so wherever the customer's own id appears in a reason, the
evidence or a trigger event id it is replaced by ``[customer]`` before it is written. A
profile tombstone (a customer erased from the compacted profile topic) deletes their time
zone and every decision detail kept of them, those read in the same batch included.

**Time.** Times are stored as UTC. A window is ``decided_at`` at or after its start:
``today`` since 00:00 UTC of ``now``'s day, ``7d`` and ``30d`` since ``now`` minus 7 or 30
days, ``all`` everything. Days (the trend, contacts per day) are UTC days; the local hour
of a contact is the customer's, from the time zone of the latest profile the store read.

One process writes a store file at a time (DuckDB locks it); the console's web threads
read it through their own cursors while the follower writes, each query batch seeing one
committed state.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import textwrap
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

import duckdb
from pydantic_core import to_jsonable_python
from ruamel.yaml.comments import CommentedMap, CommentedSeq

from app.console.model import (
    CUSTOMER_PLACEHOLDER,
    CampaignDetail,
    CampaignRow,
    CustomerDecision,
    DayCount,
    RuleVersion,
    StoreStatus,
    Window,
)
from rules.language.yaml_reader import read_document
from rules.offline.report import RuleReport, measure
from schemas.conversions import Conversion
from schemas.decisions import Decision, Outcome
from schemas.deployment import RulesetBundle
from schemas.errors import KairosError
from schemas.feedback import ENGAGED, STATUS_RANK, Feedback, FeedbackStatus
from schemas.profile import CustomerProfile

__all__ = [
    "DECISIONS_PER_CUSTOMER",
    "SCHEMA_VERSION",
    "TREND_DAYS",
    "Batch",
    "ConsoleStore",
    "ConsoleStoreError",
    "rule_texts",
    "window_start",
]

log = logging.getLogger(__name__)

#: The layout of the tables; a file of another layout is refused (delete it to rebuild).
#: 2: ``decision_details`` (the customer page's reasons and evidence).
SCHEMA_VERSION = 2
#: Decisions per customer whose details (reason text, evidence, trigger events) are kept.
DECISIONS_PER_CUSTOMER = 50
#: Days in a campaign row's trend (sent per day), ending with ``now``'s day.
TREND_DAYS = 14
#: Days of a campaign page's contacts-per-day chart, ending with ``now``'s day.
CONTACT_DAYS = 90
#: What the secret's check value is the HMAC of.
_SECRET_LABEL = b"kairos-console-store"

_TABLES = """
CREATE TABLE IF NOT EXISTS meta (key VARCHAR PRIMARY KEY, value VARCHAR NOT NULL);
CREATE TABLE IF NOT EXISTS offsets (
    topic VARCHAR NOT NULL,
    partition INTEGER NOT NULL,
    next_offset BIGINT NOT NULL,
    PRIMARY KEY (topic, partition)
);
CREATE TABLE IF NOT EXISTS decisions (
    decision_key VARCHAR PRIMARY KEY,
    customer_key VARCHAR NOT NULL,
    rule_id VARCHAR NOT NULL,
    rule_version INTEGER NOT NULL,
    ruleset_version VARCHAR NOT NULL,
    outcome VARCHAR NOT NULL,
    reason_code VARCHAR NOT NULL,
    channel VARCHAR,
    action_key VARCHAR,
    decided_at TIMESTAMP NOT NULL,
    campaign VARCHAR,
    wave INTEGER,
    seq BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS decision_details (
    decision_key VARCHAR PRIMARY KEY,
    customer_key VARCHAR NOT NULL,
    decided_at TIMESTAMP NOT NULL,
    seq BIGINT NOT NULL,
    reason VARCHAR NOT NULL,
    evidence VARCHAR NOT NULL,
    trigger_event_ids VARCHAR NOT NULL,
    deferred_until TIMESTAMP
);
CREATE TABLE IF NOT EXISTS conversions (
    rule_id VARCHAR NOT NULL,
    grp VARCHAR NOT NULL,
    decision_key VARCHAR NOT NULL,
    converted_at TIMESTAMP NOT NULL,
    PRIMARY KEY (rule_id, grp, decision_key)
);
CREATE TABLE IF NOT EXISTS feedback (
    feedback_key VARCHAR PRIMARY KEY,
    action_key VARCHAR NOT NULL,
    status VARCHAR NOT NULL,
    status_rank INTEGER NOT NULL,
    occurred_at TIMESTAMP NOT NULL,
    seq BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS profiles (
    customer_key VARCHAR PRIMARY KEY,
    timezone VARCHAR,
    updated_at TIMESTAMP NOT NULL
);
CREATE TABLE IF NOT EXISTS bundles (
    ruleset_version VARCHAR PRIMARY KEY,
    deployed_at TIMESTAMP NOT NULL,
    deployed_by VARCHAR NOT NULL,
    comment VARCHAR NOT NULL
);
CREATE TABLE IF NOT EXISTS rule_versions (
    ruleset_version VARCHAR NOT NULL,
    rule_id VARCHAR NOT NULL,
    rule_version INTEGER NOT NULL,
    text VARCHAR NOT NULL,
    deployed_at TIMESTAMP NOT NULL,
    PRIMARY KEY (ruleset_version, rule_id)
);
"""


class ConsoleStoreError(KairosError):
    """The store file cannot be used: another layout, another secret, or not DuckDB."""


@dataclass
class Batch:
    """Records read from the topics, decoded, with where reading stopped: one transaction.

    ``offsets`` maps (topic, partition) to the next offset to read, for every partition the
    batch read from. ``records`` counts every record read (``skipped`` of them did not
    decode), so that the store's totals say how far it has read.
    """

    decisions: list[Decision] = field(default_factory=list)
    conversions: list[Conversion] = field(default_factory=list)
    feedback: list[Feedback] = field(default_factory=list)
    #: (customer id, profile) in topic order; None: a tombstone (the customer was erased).
    profiles: list[tuple[str, CustomerProfile | None]] = field(default_factory=list)
    #: (ruleset version, bundle) in topic order; None: a tombstone (the bundle was purged).
    bundles: list[tuple[str, RulesetBundle | None]] = field(default_factory=list)
    offsets: dict[tuple[str, int], int] = field(default_factory=dict)
    records: int = 0
    skipped: int = 0


def window_start(window: Window, now: datetime) -> datetime | None:
    """When ``window`` starts at ``now`` (UTC), or None for ``all``.

    ``today`` starts at 00:00 UTC: one midnight for every customer and every reader, which
    a page can state in a word, where each customer's own midnight would make "today" a
    different span per row.
    """
    utc = now.astimezone(UTC)
    if window == "today":
        return datetime.combine(utc.date(), time(), tzinfo=UTC)
    if window == "7d":
        return utc - timedelta(days=7)
    if window == "30d":
        return utc - timedelta(days=30)
    return None


def _naive_utc(moment: datetime) -> datetime:
    """DuckDB ``TIMESTAMP`` values are UTC without a zone: no session time zone applies."""
    return moment.astimezone(UTC).replace(tzinfo=None)


def _aware(moment: datetime | None) -> datetime | None:
    return None if moment is None else moment.replace(tzinfo=UTC)


def _iso(moment: datetime) -> str:
    return _naive_utc(moment).isoformat()


# --------------------------------------------------------------------------- rule texts


def rule_texts(files: Mapping[str, str]) -> dict[str, tuple[int, str]]:
    """Each rule of a bundle's files: rule id -> (version, its YAML as written).

    Read with the rule files' own bounded YAML reader rather than compiled: the text is
    what ops wrote and recognise (comments included), and a bundle that this Kairos could
    no longer compile still shows its rules. A rule's text runs from its ``- id:`` line to
    the next rule (or the end of the ``rules:`` list), without the blank and comment lines
    that introduce what follows.
    """
    texts: dict[str, tuple[int, str]] = {}
    for name, source in sorted(files.items()):
        document, problem = read_document(name, source)
        if problem is not None or not isinstance(document, CommentedMap):
            continue
        rules = document.get("rules")
        if not isinstance(rules, CommentedSeq):
            continue
        lines = source.splitlines()
        keys = list(document)
        after = keys[keys.index("rules") + 1 :]
        end_of_list = document.lc.key(after[0])[0] if after else len(lines)
        starts = [rules.lc.item(i)[0] for i in range(len(rules))] + [end_of_list]
        for index, rule in enumerate(rules):
            if not isinstance(rule, CommentedMap):
                continue
            rule_id, version = rule.get("id"), rule.get("version")
            if not isinstance(rule_id, str) or not isinstance(version, int):
                continue
            chunk = lines[starts[index] : max(starts[index + 1], starts[index] + 1)]
            while len(chunk) > 1 and (not chunk[-1].strip() or chunk[-1].lstrip()[:1] == "#"):
                chunk.pop()
            texts[rule_id] = (version, textwrap.dedent("\n".join(chunk)))
    return texts


# --------------------------------------------------------------------------- SQL

#: Per rule in a window: the outcomes, and the funnel from each sent action's furthest
#: status (highest rank; between equal ranks the report that arrived first), as
#: ``build_report`` counts them.
_OUTCOMES_SQL = """
WITH d AS (
    SELECT * FROM decisions
    WHERE ($since IS NULL OR decided_at >= $since) AND ($rule IS NULL OR rule_id = $rule)
),
furthest AS (
    SELECT f.action_key, first(f.status ORDER BY f.status_rank DESC, f.seq) AS status
    FROM feedback f
    WHERE f.action_key IN (SELECT action_key FROM d WHERE outcome = $sent)
    GROUP BY f.action_key
)
SELECT
    d.rule_id,
    count(*) FILTER (WHERE d.outcome <> $deferred) AS fired,
    count(*) FILTER (WHERE d.outcome = $sent) AS sent,
    count(*) FILTER (WHERE d.outcome = $deferred) AS deferred,
    count(*) FILTER (WHERE d.outcome = $held_out) AS held_out,
    count(*) FILTER (WHERE d.outcome = $sent AND s.status NOT IN ($failed, $unsubscribed))
        AS delivered,
    count(*) FILTER (WHERE d.outcome = $sent AND list_contains($engaged, s.status)) AS engaged,
    count(*) FILTER (WHERE d.outcome = $sent AND s.status = $failed) AS failed,
    first(d.campaign ORDER BY d.seq DESC) FILTER (WHERE d.campaign IS NOT NULL) AS campaign,
    first(d.wave ORDER BY d.seq DESC) FILTER (WHERE d.campaign IS NOT NULL) AS wave
FROM d LEFT JOIN furthest s ON d.outcome = $sent AND s.action_key = d.action_key
GROUP BY d.rule_id
"""

#: Sent by channel, and suppressed by reason (every outcome but sent, held out, deferred).
_BREAKDOWN_SQL = """
SELECT rule_id, 'channel' AS kind, coalesce(channel, 'None') AS name, count(*) AS n
FROM decisions
WHERE ($since IS NULL OR decided_at >= $since) AND ($rule IS NULL OR rule_id = $rule)
    AND outcome = $sent
GROUP BY ALL
UNION ALL
SELECT rule_id, 'reason', reason_code, count(*)
FROM decisions
WHERE ($since IS NULL OR decided_at >= $since) AND ($rule IS NULL OR rule_id = $rule)
    AND outcome NOT IN ($sent, $held_out, $deferred)
GROUP BY ALL
"""

#: Conversions by group, each in the window of the decision it credits. One whose decision
#: the store never read (the topic's retention dropped it) counts under "all" only.
_CONVERSIONS_SQL = """
SELECT
    c.rule_id,
    count(*) FILTER (WHERE c.grp = 'treated') AS treated,
    count(*) FILTER (WHERE c.grp <> 'treated') AS holdout
FROM conversions c LEFT JOIN decisions d ON d.decision_key = c.decision_key
WHERE ($since IS NULL OR d.decided_at >= $since) AND ($rule IS NULL OR c.rule_id = $rule)
GROUP BY c.rule_id
"""

#: Contacts sent per rule and UTC day (and channel), from ``$first`` to before ``$last``.
_DAYS_SQL = """
SELECT rule_id, CAST(decided_at AS DATE) AS day, coalesce(channel, 'None') AS channel,
    count(*) AS n
FROM decisions
WHERE outcome = $sent AND decided_at >= $first AND decided_at < $last
    AND ($rule IS NULL OR rule_id = $rule)
GROUP BY ALL
ORDER BY day, channel
"""

#: A rule's contacts by the customer's local hour (UTC when no time zone is known).
_LOCAL_HOUR_SQL = """
SELECT
    hour(CASE WHEN p.timezone IS NULL THEN d.decided_at
        ELSE timezone(p.timezone, timezone('UTC', d.decided_at)) END) AS local_hour,
    count(*) AS n,
    count(*) FILTER (WHERE p.timezone IS NULL) AS at_utc
FROM decisions d LEFT JOIN profiles p ON p.customer_key = d.customer_key
WHERE d.rule_id = $rule AND d.outcome = $sent
GROUP BY local_hour
"""

#: A rule's versions as deployed, newest first.
_VERSIONS_SQL = """
SELECT
    rule_version,
    list(ruleset_version ORDER BY deployed_at, ruleset_version) AS rulesets,
    min(deployed_at) AS first_deployed_at,
    first(text ORDER BY deployed_at, ruleset_version) AS text
FROM rule_versions
WHERE rule_id = $rule
GROUP BY rule_version
ORDER BY rule_version DESC
"""


#: The details beyond each of the batch's customers' latest ``$keep`` decisions (the latest by
#: ``decided_at``, then by arrival).
_PRUNE_DETAILS_SQL = """
DELETE FROM decision_details WHERE decision_key IN (
    SELECT decision_key FROM (
        SELECT decision_key, row_number() OVER (
            PARTITION BY customer_key ORDER BY decided_at DESC, seq DESC
        ) AS newest
        FROM decision_details
        WHERE customer_key IN (SELECT unnest($customers::VARCHAR[]))
    )
    WHERE newest > $keep
)
"""

#: One customer's latest decisions with their details, and each contact's furthest status
#: (as the funnel reads it: highest rank, between equal ranks the first report).
_CUSTOMER_DECISIONS_SQL = """
WITH mine AS (
    SELECT
        x.decision_key, x.seq, x.reason, x.evidence, x.trigger_event_ids, x.deferred_until,
        d.rule_id, d.rule_version, d.ruleset_version, d.outcome, d.reason_code, d.channel,
        d.action_key, d.decided_at, d.campaign, d.wave
    FROM decision_details x JOIN decisions d ON d.decision_key = x.decision_key
    WHERE x.customer_key = $customer
    ORDER BY x.decided_at DESC, x.seq DESC
    LIMIT $limit
),
furthest AS (
    SELECT
        f.action_key,
        first(f.status ORDER BY f.status_rank DESC, f.seq) AS action_status,
        first(f.occurred_at ORDER BY f.status_rank DESC, f.seq) AS action_status_at
    FROM feedback f
    WHERE f.action_key IN (SELECT action_key FROM mine WHERE action_key IS NOT NULL)
    GROUP BY f.action_key
)
SELECT mine.*, s.action_status, s.action_status_at
FROM mine LEFT JOIN furthest s ON s.action_key = mine.action_key
ORDER BY mine.decided_at DESC, mine.seq DESC
"""


def _outcome_parameters() -> dict[str, Any]:
    return {
        "sent": Outcome.SENT.value,
        "deferred": Outcome.DEFERRED.value,
        "held_out": Outcome.HELD_OUT.value,
        "failed": FeedbackStatus.FAILED.value,
        "unsubscribed": FeedbackStatus.UNSUBSCRIBED.value,
        "engaged": sorted(str(status) for status in ENGAGED),
    }


#: Each table's upsert: columns and their types (the rows travel as one JSON parameter,
#: which DuckDB parses in one pass — far faster than a statement per row), and what a
#: record already stored becomes. ``seq`` (arrival order) is never overwritten.
_UPSERTS: dict[str, tuple[dict[str, str], str]] = {
    "decisions": (
        {
            "decision_key": "VARCHAR",
            "customer_key": "VARCHAR",
            "rule_id": "VARCHAR",
            "rule_version": "INTEGER",
            "ruleset_version": "VARCHAR",
            "outcome": "VARCHAR",
            "reason_code": "VARCHAR",
            "channel": "VARCHAR",
            "action_key": "VARCHAR",
            "decided_at": "TIMESTAMP",
            "campaign": "VARCHAR",
            "wave": "INTEGER",
            "seq": "BIGINT",
        },
        "ON CONFLICT (decision_key) DO UPDATE SET customer_key = excluded.customer_key, "
        "rule_id = excluded.rule_id, rule_version = excluded.rule_version, "
        "ruleset_version = excluded.ruleset_version, outcome = excluded.outcome, "
        "reason_code = excluded.reason_code, channel = excluded.channel, "
        "action_key = excluded.action_key, decided_at = excluded.decided_at, "
        "campaign = excluded.campaign, wave = excluded.wave",
    ),
    # evidence (a JSON object) and trigger_event_ids (a JSON array of strings) arrive as JSON
    # and are kept as its text.
    "decision_details": (
        {
            "decision_key": "VARCHAR",
            "customer_key": "VARCHAR",
            "decided_at": "TIMESTAMP",
            "seq": "BIGINT",
            "reason": "VARCHAR",
            "evidence": "JSON",
            "trigger_event_ids": "JSON",
            "deferred_until": "TIMESTAMP",
        },
        "ON CONFLICT (decision_key) DO UPDATE SET customer_key = excluded.customer_key, "
        "decided_at = excluded.decided_at, reason = excluded.reason, "
        "evidence = excluded.evidence, trigger_event_ids = excluded.trigger_event_ids, "
        "deferred_until = excluded.deferred_until",
    ),
    "conversions": (
        {
            "rule_id": "VARCHAR",
            "grp": "VARCHAR",
            "decision_key": "VARCHAR",
            "converted_at": "TIMESTAMP",
        },
        "ON CONFLICT (rule_id, grp, decision_key) DO NOTHING",
    ),
    "feedback": (
        {
            "feedback_key": "VARCHAR",
            "action_key": "VARCHAR",
            "status": "VARCHAR",
            "status_rank": "INTEGER",
            "occurred_at": "TIMESTAMP",
            "seq": "BIGINT",
        },
        "ON CONFLICT (feedback_key) DO UPDATE SET action_key = excluded.action_key, "
        "status = excluded.status, status_rank = excluded.status_rank, "
        "occurred_at = excluded.occurred_at",
    ),
    # A profile replaces the stored one only when newer, as the worker applies profiles.
    "profiles": (
        {"customer_key": "VARCHAR", "timezone": "VARCHAR", "updated_at": "TIMESTAMP"},
        "ON CONFLICT (customer_key) DO UPDATE SET timezone = excluded.timezone, "
        "updated_at = excluded.updated_at WHERE excluded.updated_at > profiles.updated_at",
    ),
    "bundles": (
        {
            "ruleset_version": "VARCHAR",
            "deployed_at": "TIMESTAMP",
            "deployed_by": "VARCHAR",
            "comment": "VARCHAR",
        },
        "ON CONFLICT (ruleset_version) DO UPDATE SET deployed_at = excluded.deployed_at, "
        "deployed_by = excluded.deployed_by, comment = excluded.comment",
    ),
    "rule_versions": (
        {
            "ruleset_version": "VARCHAR",
            "rule_id": "VARCHAR",
            "rule_version": "INTEGER",
            "text": "VARCHAR",
            "deployed_at": "TIMESTAMP",
        },
        "ON CONFLICT (ruleset_version, rule_id) DO UPDATE SET "
        "rule_version = excluded.rule_version, text = excluded.text, "
        "deployed_at = excluded.deployed_at",
    ),
}


def _upsert(cursor: duckdb.DuckDBPyConnection, table: str, rows: list[dict[str, Any]]) -> None:
    if not rows:
        return
    columns, on_conflict = _UPSERTS[table]
    names = ", ".join(columns)
    picked = ", ".join(f"r.{name}" for name in columns)
    structure = json.dumps([columns]).replace("'", "''")
    cursor.execute(
        f"INSERT INTO {table} ({names}) SELECT {picked} "
        f"FROM (SELECT unnest(from_json(?, '{structure}')) AS r) {on_conflict}",
        [json.dumps(rows)],
    )


# --------------------------------------------------------------------------- the store


class ConsoleStore:
    """The console's DuckDB store, written by the follower and read by the pages.

    :class:`app.console.ingest.Follower` writes it; the pages read it as
    :class:`app.console.model.CampaignQueries`.

    ``secret`` keys the hashes that stand for customer and record ids (see the module's
    docstring); it must be the same every time the file is opened. ``decisions_per_customer``
    bounds the decision details kept per customer (the customer page's).
    """

    def __init__(
        self,
        path: Path | str,
        secret: bytes | str,
        *,
        decisions_per_customer: int = DECISIONS_PER_CUSTOMER,
    ) -> None:
        self._secret = secret.encode() if isinstance(secret, str) else bytes(secret)
        if not self._secret:
            raise ConsoleStoreError("the console store needs a non-empty secret for its hashes")
        if decisions_per_customer < 1:
            raise ConsoleStoreError("the console store keeps at least one decision per customer")
        self.decisions_per_customer = decisions_per_customer
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._db = duckdb.connect(str(self.path))
        except duckdb.Error as exc:
            raise ConsoleStoreError(f"cannot open the console store {self.path}: {exc}") from exc
        self._write_lock = threading.Lock()
        self._lag: int | None = None
        try:
            self._prepare()
            with self._cursor() as cursor:
                zones = cursor.execute("SELECT name FROM pg_timezone_names()").fetchall()
        except BaseException:
            self._db.close()
            raise
        #: The time zones DuckDB can convert to (its ICU database, not Python's).
        self._zones = {name for (name,) in zones}

    # ----------------------------------------------------------------- lifecycle

    def _prepare(self) -> None:
        """Create the tables, or check that an existing file is ours and keyed alike.

        A file of another layout is refused as it is: no table of this layout is added to it.
        """
        check = hmac.new(self._secret, _SECRET_LABEL, hashlib.sha256).hexdigest()
        with self._cursor() as cursor:
            cursor.execute("BEGIN TRANSACTION")
            cursor.execute(_TABLES.split(";", 1)[0])  # meta: what says whose file this is
            stored = dict(cursor.execute("SELECT key, value FROM meta").fetchall())
            if not stored:
                cursor.execute(_TABLES)
                initial = {
                    "schema_version": str(SCHEMA_VERSION),
                    "secret_check": check,
                    "records": "0",
                    "skipped": "0",
                    "seq": "0",
                }
                cursor.executemany("INSERT INTO meta VALUES (?, ?)", list(initial.items()))
                cursor.execute("COMMIT")
                return
            cursor.execute("COMMIT")
        if stored.get("schema_version") != str(SCHEMA_VERSION):
            raise ConsoleStoreError(
                f"the console store {self.path} has layout {stored.get('schema_version')}, "
                f"this Kairos writes layout {SCHEMA_VERSION}; delete the file and the console "
                "rebuilds it from the topics"
            )
        if not hmac.compare_digest(stored.get("secret_check", ""), check):
            raise ConsoleStoreError(
                f"the console store {self.path} was written with another customer-id secret "
                "(KAIROS_CONSOLE_CUSTOMER_ID_SECRET); use that one, or delete the file and the "
                "console rebuilds it from the topics"
            )

    def close(self) -> None:
        """Close the file (DuckDB checkpoints its write-ahead log into it).

        Stop the follower first: a batch it writes after this fails, and is read again
        from Kafka when the store is next opened.
        """
        self._db.close()

    def __enter__(self) -> ConsoleStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @contextmanager
    def _cursor(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A connection of its own to the same database: one per thread and use."""
        cursor = self._db.cursor()
        try:
            yield cursor
        finally:
            cursor.close()

    @contextmanager
    def _snapshot(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A read transaction: the queries of one answer see one committed batch."""
        with self._cursor() as cursor:
            cursor.execute("BEGIN TRANSACTION")
            try:
                yield cursor
            finally:
                cursor.execute("ROLLBACK")

    # ----------------------------------------------------------------- keys

    def key(self, identifier: str) -> str:
        """The keyed hash the store keeps for ``identifier`` (a customer or record id).

        128 bits of HMAC-SHA256: collisions between a store's ids are out of reach, and
        without the secret a hash cannot be tested against a guessed or known id.
        """
        return hmac.new(self._secret, identifier.encode(), hashlib.sha256).hexdigest()[:32]

    def _optional_key(self, identifier: str | None) -> str | None:
        return None if identifier is None else self.key(identifier)

    # ----------------------------------------------------------------- writing

    def offsets(self) -> dict[tuple[str, int], int]:
        """The next offset to read of every (topic, partition) the store has read from."""
        with self._cursor() as cursor:
            rows = cursor.execute("SELECT topic, partition, next_offset FROM offsets").fetchall()
        return {(topic, partition): offset for topic, partition, offset in rows}

    def write(self, batch: Batch) -> None:
        """Store ``batch`` and its offsets in one transaction: all of it, or none of it.

        Raises:
            duckdb.Error: the write failed (the file is as before: re-read from its offsets).

        """
        with self._write_lock, self._cursor() as cursor:
            cursor.execute("BEGIN TRANSACTION")
            try:
                self._write(cursor, batch)
            except BaseException:
                cursor.execute("ROLLBACK")
                raise
            cursor.execute("COMMIT")

    def _write(self, cursor: duckdb.DuckDBPyConnection, batch: Batch) -> None:
        meta = dict(cursor.execute("SELECT key, value FROM meta").fetchall())
        seq = int(meta["seq"])
        # Within a batch as across batches: the last copy of a record wins, in the place of
        # the first (a dict's semantics, which build_report's de-duplication has).
        decisions: dict[str, dict[str, Any]] = {}
        details: dict[str, dict[str, Any]] = {}
        for decision in batch.decisions:
            key = self.key(decision.decision_id)
            seq += 1
            decisions[key] = {
                "decision_key": key,
                "customer_key": self.key(decision.customer_id),
                "rule_id": decision.rule_id,
                "rule_version": decision.rule_version,
                "ruleset_version": decision.ruleset_version,
                "outcome": decision.outcome.value,
                "reason_code": decision.reason_code.value,
                "channel": None if decision.channel is None else str(decision.channel),
                "action_key": self._optional_key(decision.action_id),
                "decided_at": _iso(decision.decided_at),
                "campaign": decision.campaign,
                "wave": decision.wave,
                "seq": decisions[key]["seq"] if key in decisions else seq,
            }
            details[key] = _details(decision, decisions[key])
        feedback: dict[str, dict[str, Any]] = {}
        for report in batch.feedback:
            key = self.key(report.feedback_id)
            seq += 1
            feedback[key] = {
                "feedback_key": key,
                "action_key": self.key(report.action_id),
                "status": report.status.value,
                "status_rank": STATUS_RANK[report.status],
                "occurred_at": _iso(report.occurred_at),
                "seq": feedback[key]["seq"] if key in feedback else seq,
            }
        conversions: dict[tuple[str, str, str], dict[str, Any]] = {}
        for conversion in batch.conversions:
            row = {
                "rule_id": conversion.rule_id,
                "grp": conversion.group,
                "decision_key": self.key(conversion.decision_id),
                "converted_at": _iso(conversion.converted_at),
            }
            conversions.setdefault((row["rule_id"], row["grp"], row["decision_key"]), row)
        _upsert(cursor, "decisions", list(decisions.values()))
        _upsert(cursor, "feedback", list(feedback.values()))
        _upsert(cursor, "conversions", list(conversions.values()))
        _upsert(cursor, "decision_details", list(details.values()))
        if details:
            customers = sorted({row["customer_key"] for row in details.values()})
            cursor.execute(
                _PRUNE_DETAILS_SQL, {"customers": customers, "keep": self.decisions_per_customer}
            )
        self._write_profiles(cursor, batch)
        self._write_bundles(cursor, batch)
        if batch.offsets:
            cursor.executemany(
                "INSERT INTO offsets VALUES (?, ?, ?) "
                "ON CONFLICT (topic, partition) DO UPDATE SET next_offset = excluded.next_offset",
                [[topic, part, offset] for (topic, part), offset in batch.offsets.items()],
            )
        counters = {
            "seq": seq,
            "records": int(meta["records"]) + batch.records,
            "skipped": int(meta["skipped"]) + batch.skipped,
            "updated_at": datetime.now(UTC).isoformat(),
        }
        cursor.executemany(
            "INSERT INTO meta VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            [[name, str(value)] for name, value in counters.items()],
        )

    def _write_profiles(self, cursor: duckdb.DuckDBPyConnection, batch: Batch) -> None:
        """Time zones only; a zone DuckDB does not know (a newer tz database) reads as UTC."""
        profiles: dict[str, dict[str, Any]] = {}
        erased: set[str] = set()
        for customer_id, profile in batch.profiles:
            key = self.key(customer_id)
            if profile is None:
                erased.add(key)
                profiles.pop(key, None)
                continue
            known = profiles.get(key)
            if known is None or _iso(profile.updated_at) > known["updated_at"]:
                zone = profile.timezone if profile.timezone in self._zones else None
                profiles[key] = {
                    "customer_key": key,
                    "timezone": zone,
                    "updated_at": _iso(profile.updated_at),
                }
        if erased:  # then whatever came after the tombstone, whatever its updated_at
            for table in ("profiles", "decision_details"):  # the batch's decisions included
                cursor.execute(
                    f"DELETE FROM {table} WHERE list_contains(?, customer_key)", [sorted(erased)]
                )
        _upsert(cursor, "profiles", list(profiles.values()))

    def _write_bundles(self, cursor: duckdb.DuckDBPyConnection, batch: Batch) -> None:
        """Each bundle's rules, as text, for the campaign pages' version history."""
        bundles: dict[str, RulesetBundle] = {}
        erased: set[str] = set()
        for version, bundle in batch.bundles:
            if bundle is None:
                erased.add(version)
                bundles.pop(version, None)
            else:
                bundles[version] = bundle
        for table in ("bundles", "rule_versions") if erased else ():
            cursor.execute(
                f"DELETE FROM {table} WHERE list_contains(?, ruleset_version)",
                [sorted(erased)],
            )
        rows: list[dict[str, Any]] = []
        rules: list[dict[str, Any]] = []
        for bundle in bundles.values():
            deployed_at = _iso(bundle.deployed_at)
            rows.append(
                {
                    "ruleset_version": bundle.version,
                    "deployed_at": deployed_at,
                    "deployed_by": bundle.deployed_by,
                    "comment": bundle.comment,
                }
            )
            for rule_id, (rule_version, text) in rule_texts(bundle.files).items():
                rules.append(
                    {
                        "ruleset_version": bundle.version,
                        "rule_id": rule_id,
                        "rule_version": rule_version,
                        "text": text,
                        "deployed_at": deployed_at,
                    }
                )
        _upsert(cursor, "bundles", rows)
        _upsert(cursor, "rule_versions", rules)

    def set_lag(self, lag: int | None) -> None:
        """What the follower measured: records between its position and the topics' ends."""
        self._lag = lag

    # ----------------------------------------------------------------- queries

    def campaigns(self, window: Window, now: datetime) -> list[CampaignRow]:
        """Every rule (each wave is one) over ``window`` at ``now``, by rule id.

        The figures are ``kairos report``'s (``rules.offline.report.build_report``) over the
        decisions decided in the window and the conversions crediting them; ``trend`` is
        each rule's contacts per UTC day over the :data:`TREND_DAYS` days ending ``now``.
        ``now`` is the decisions' clock: the wall clock in production, the simulated one
        in the demo (``status().last_record_at`` follows it).
        """
        with self._snapshot() as cursor:
            return self._rows(cursor, window_start(window, now), now, rule_id=None)

    def campaign(
        self, rule_id: str, now: datetime, days: int = CONTACT_DAYS
    ) -> CampaignDetail | None:
        """One rule over all time; None when the store knows nothing of it.

        ``contacts_per_day`` covers every UTC day (zeros included) from the rule's first
        contact, or ``days`` before ``now``'s day if later, to ``now``'s day, for each
        channel it used then. ``local_hour`` has all 24 hours. ``versions`` come from the
        deployed bundles, newest first: a rule only ever run from a worker's bootstrap files
        (``KAIROS_RULES_PATH``, never deployed) has none.
        """
        with self._snapshot() as cursor:
            rows = self._rows(cursor, None, now, rule_id=rule_id)
            versions = self._versions(cursor, rule_id)
            if not rows and not versions:
                return None
            contacts = self._contacts_per_day(cursor, rule_id, now, days)
            hours, at_utc = self._local_hours(cursor, rule_id)
        return CampaignDetail(
            row=rows[0] if rows else CampaignRow(rule_id=rule_id, trend=[0] * TREND_DAYS),
            contacts_per_day=contacts,
            local_hour=hours,
            local_hour_utc=at_utc,
            versions=versions,
        )

    def customer_decisions(self, customer_id: str, limit: int) -> list[CustomerDecision]:
        """The customer's latest ``limit`` decisions with their details, newest first.

        Looked up by the customer id's keyed hash: the id itself is neither kept nor logged.
        At most the :data:`DECISIONS_PER_CUSTOMER` (the constructor's bound) latest are kept;
        none once a profile tombstone erased the customer. Each contact has the furthest
        status its channel reported.
        """
        parameters = {"customer": self.key(customer_id), "limit": max(0, limit)}
        with self._snapshot() as cursor:
            rows = _records(cursor, _CUSTOMER_DECISIONS_SQL, parameters)
        return [
            CustomerDecision(
                decision_key=row["decision_key"],
                rule_id=row["rule_id"],
                rule_version=row["rule_version"],
                ruleset_version=row["ruleset_version"],
                outcome=row["outcome"],
                reason_code=row["reason_code"],
                reason=row["reason"],
                evidence=json.loads(row["evidence"]),
                trigger_event_ids=json.loads(row["trigger_event_ids"]),
                channel=row["channel"],
                action_key=row["action_key"],
                action_status=row["action_status"],
                action_status_at=_aware(row["action_status_at"]),
                decided_at=row["decided_at"].replace(tzinfo=UTC),
                deferred_until=_aware(row["deferred_until"]),
                campaign=row["campaign"],
                wave=row["wave"],
            )
            for row in rows
        ]

    def status(self) -> StoreStatus:
        """Records read, the newest decision's time, the follower's lag, the last write."""
        with self._snapshot() as cursor:
            meta = dict(cursor.execute("SELECT key, value FROM meta").fetchall())
            newest = cursor.execute("SELECT max(decided_at) FROM decisions").fetchone()
        updated_at = meta.get("updated_at")
        return StoreStatus(
            records=int(meta["records"]),
            last_record_at=_aware(newest[0] if newest else None),
            lag=self._lag,
            skipped=int(meta["skipped"]),
            updated_at=datetime.fromisoformat(updated_at) if updated_at else None,
        )

    def _rows(
        self,
        cursor: duckdb.DuckDBPyConnection,
        since: datetime | None,
        now: datetime,
        rule_id: str | None,
    ) -> list[CampaignRow]:
        parameters = {"since": None if since is None else _naive_utc(since), "rule": rule_id}
        outcome_parameters = _outcome_parameters()
        reports: dict[str, RuleReport] = {}
        for row in _records(cursor, _OUTCOMES_SQL, {**parameters, **outcome_parameters}):
            reports[row["rule_id"]] = RuleReport(**row)
        breakdown = {name: outcome_parameters[name] for name in ("sent", "held_out", "deferred")}
        for rule, kind, name, count in cursor.execute(
            _BREAKDOWN_SQL, {**parameters, **breakdown}
        ).fetchall():
            report = reports[rule]
            counts = report.sent_by_channel if kind == "channel" else report.suppressed_by_reason
            counts[name] = count
        for row in _records(cursor, _CONVERSIONS_SQL, parameters):
            report = reports.setdefault(row["rule_id"], RuleReport(row["rule_id"]))
            report.treated_conversions = row["treated"]
            report.holdout_conversions = row["holdout"]
        trends = self._trends(cursor, now, rule_id)
        rows = []
        for rule in sorted(reports):
            report = measure(reports[rule])
            report.sent_by_channel = dict(sorted(report.sent_by_channel.items()))
            report.suppressed_by_reason = dict(sorted(report.suppressed_by_reason.items()))
            trend = trends.get(rule, [0] * TREND_DAYS)
            rows.append(CampaignRow(**asdict(report), trend=trend))
        return rows

    def _trends(
        self, cursor: duckdb.DuckDBPyConnection, now: datetime, rule_id: str | None
    ) -> dict[str, list[int]]:
        last_day = now.astimezone(UTC).date()
        first_day = last_day - timedelta(days=TREND_DAYS - 1)
        trends: dict[str, list[int]] = {}
        for rule, day, _, count in self._days(cursor, first_day, last_day, rule_id):
            trend = trends.setdefault(rule, [0] * TREND_DAYS)
            trend[(day - first_day).days] += count
        return trends

    def _days(
        self,
        cursor: duckdb.DuckDBPyConnection,
        first_day: date,
        last_day: date,
        rule_id: str | None,
    ) -> Iterable[tuple[str, date, str, int]]:
        parameters = {
            "sent": Outcome.SENT.value,
            "first": datetime.combine(first_day, time()),
            "last": datetime.combine(last_day + timedelta(days=1), time()),
            "rule": rule_id,
        }
        return [
            (rule, day, channel, count)
            for rule, day, channel, count in cursor.execute(_DAYS_SQL, parameters).fetchall()
        ]

    def _contacts_per_day(
        self, cursor: duckdb.DuckDBPyConnection, rule_id: str, now: datetime, days: int
    ) -> list[DayCount]:
        last_day = now.astimezone(UTC).date()
        earliest = last_day - timedelta(days=max(days, 1) - 1)
        counts = {
            (day, channel): count
            for _, day, channel, count in self._days(cursor, earliest, last_day, rule_id)
        }
        if not counts:
            return []
        first_day = min(day for day, _ in counts)
        channels = sorted({channel for _, channel in counts})
        return [
            DayCount(day=day, channel=channel, contacts=counts.get((day, channel), 0))
            for offset in range((last_day - first_day).days + 1)
            for day in [first_day + timedelta(days=offset)]
            for channel in channels
        ]

    def _local_hours(
        self, cursor: duckdb.DuckDBPyConnection, rule_id: str
    ) -> tuple[dict[int, int], int]:
        hours = dict.fromkeys(range(24), 0)
        at_utc = 0
        parameters = {"rule": rule_id, "sent": Outcome.SENT.value}
        for hour, count, utc_count in cursor.execute(_LOCAL_HOUR_SQL, parameters).fetchall():
            hours[hour] += count
            at_utc += utc_count
        return hours, at_utc

    def _versions(self, cursor: duckdb.DuckDBPyConnection, rule_id: str) -> list[RuleVersion]:
        return [
            RuleVersion(
                rule_version=row["rule_version"],
                ruleset_versions=row["rulesets"],
                first_deployed_at=_aware(row["first_deployed_at"]),
                text=row["text"],
            )
            for row in _records(cursor, _VERSIONS_SQL, {"rule": rule_id})
        ]


def _details(decision: Decision, row: Mapping[str, Any]) -> dict[str, Any]:
    """The customer page's part of a decision beside its ``row``, the customer's id replaced."""
    scrub = _scrubber(decision.customer_id)
    return {
        "decision_key": row["decision_key"],
        "customer_key": row["customer_key"],
        "decided_at": row["decided_at"],
        "seq": row["seq"],
        "reason": scrub(decision.reason),
        "evidence": scrub(decision.evidence),
        "trigger_event_ids": [scrub(event_id) for event_id in decision.trigger_event_ids],
        "deferred_until": (
            None if decision.deferred_until is None else _iso(decision.deferred_until)
        ),
    }


def _scrubber(customer_id: str) -> Callable[[Any], Any]:
    """Replaces the customer's id wherever it appears in a value's strings and keys.

    What it gives is JSON's: a value of another type (a date, a decimal, from a decision
    made in Python rather than read from the topic) becomes its JSON form first.
    """

    def scrub(value: Any) -> Any:
        if isinstance(value, str):
            return value.replace(customer_id, CUSTOMER_PLACEHOLDER)
        if value is None or isinstance(value, bool | int | float):
            return value
        if isinstance(value, list | tuple):
            return [scrub(item) for item in value]
        if isinstance(value, dict):
            return {scrub(str(name)): scrub(item) for name, item in value.items()}
        return scrub(to_jsonable_python(value))

    return scrub


def _records(
    cursor: duckdb.DuckDBPyConnection, sql: str, parameters: dict[str, Any]
) -> list[dict[str, Any]]:
    """Rows as dicts by column name."""
    result = cursor.execute(sql, parameters)
    names = [column[0] for column in result.description or ()]
    return [dict(zip(names, row, strict=True)) for row in result.fetchall()]
