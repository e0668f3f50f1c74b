"""Peer (c): the same trivial stateful job in Quix Streams, the best Python peer.

Per event: the customer's count and the sum of its amounts (0 for events without one) in
Quix's RocksDB state, changelog topic on, and one event in ten forwarded to the decisions
topic — over the same three input topics as Kairos and ``bench/trivial_faust.py``, one
dataframe each (see :func:`build`: a customer's count is kept per input topic). Quix's own
checkpointing (state changes kept in memory, written and produced once per checkpoint,
offsets committed after), with the commit interval Kairos uses.

Run by ``bench/pipeline.py`` as a worker process (``python -m bench.trivial_quix``),
configured by the same ``KAIROS_*`` variables as ``kairos worker``; it serves ``/readyz``
and ``/count`` (events processed) on ``KAIROS_WEB_PORT``, like the trivial Faust agent.
Needs the ``bench`` extra (``pip install .[bench]``).
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from quixstreams import Application, State
from quixstreams.models.topics import Topic, TopicAdmin, TopicManager

from app.kafka.rules_topic import bootstrap_servers
from app.settings import Settings
from app.worker.tansu_compat import FETCH_MAX_WAIT_MS
from schemas.topics import TopicNames


class TansuTopicManager(TopicManager):
    """Quix's topic manager with a default for the ``retention.ms`` Tansu does not report.

    Quix derives each changelog topic's config from its input topics' broker configs
    (``TopicManager.derive_topic_config``) and reads ``extra_config["retention.ms"]`` there
    without a default (``retention.bytes`` has one: ``-1``), so on Tansu, whose
    DescribeConfigs answer carries no ``retention.ms``, ``sdf.apply(..., stateful=True)``
    raises ``KeyError: 'retention.ms'``. ``-1`` (keep forever) is what Tansu's memory engine
    does anyway. Apache Kafka reports the value and needs none of this.
    """

    def _configure_topic(self, topic: Topic, broker_topic: Topic) -> Topic:
        topic = super()._configure_topic(topic, broker_topic)
        topic.broker_config.extra_config.setdefault("retention.ms", "-1")
        return topic


def build(settings: Settings, seen: list[int]) -> Application:
    bootstrap = ",".join(bootstrap_servers(settings.broker_url))
    group = f"{settings.app_id}-quix"
    # librdkafka's defaults on Tansu: a 45 s session makes the first join take ~22 s
    # (EMBEDDED-BROKER.md, 1), and Tansu holds every fetch for its full max-wait (3): the
    # same accommodations as the Faust workers and the raw client.
    consumer = {
        "session.timeout.ms": int(settings.session_timeout_s * 1000),
        "heartbeat.interval.ms": int(settings.heartbeat_interval_s * 1000),
        "fetch.wait.max.ms": FETCH_MAX_WAIT_MS,
    }
    manager = TansuTopicManager(
        topic_admin=TopicAdmin(broker_address=bootstrap), consumer_group=group
    )
    app = Application(
        broker_address=bootstrap,
        consumer_group=group,
        auto_offset_reset="earliest",
        commit_interval=settings.commit_interval_s,
        consumer_extra_config=consumer,
        state_dir=str(settings.state_dir),
        use_changelog_topics=True,
        topic_manager=manager,
        loglevel="WARNING",
        on_message_processed=lambda *_: _count(seen),
    )
    topics = TopicNames(settings.topic_prefix)
    inputs = [app.topic(name, value_deserializer="json") for name in topics.event_inputs]
    forward = app.topic(topics.decisions, value_serializer="json")

    def count_and_sum(event: dict[str, Any], state: State) -> bool:
        state.set("count", state.get("count", 0) + 1)
        state.set("sum", state.get("sum", 0.0) + float(event.get("amount") or 0))
        return (seen[0] + 1) % 10 == 0  # seen counts after the event: one in ten forwarded

    # One dataframe (and one store, one changelog topic) per input topic, not the three
    # merged with ``sdf.concat``: a merge of several topics turns on Quix's time alignment
    # (``poll_row(buffered=True)``), which waits for a fresh high-water mark whenever one
    # partition's buffer runs dry, and on Tansu, which holds every fetch for its full
    # max-wait, that drained 1,500 events at 26-117 events/s. The per-event work is the same:
    # one state read and write, one changelog record per changed key per checkpoint.
    for topic in inputs:
        sdf = app.dataframe(topic).filter(count_and_sum, stateful=True)
        sdf.to_topic(forward)
    return app


def _count(seen: list[int]) -> None:
    seen[0] += 1


def serve(port: int, seen: list[int]) -> None:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = {"/readyz": {"ready": True}, "/count": {"events": seen[0]}}.get(self.path)
            self.send_response(200 if body else 404)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(json.dumps(body).encode())

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()


if __name__ == "__main__":
    import os

    settings = Settings()
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    seen = [0]
    app = build(settings, seen)
    serve(int(os.environ["KAIROS_WEB_PORT"]), seen)
    app.run()
