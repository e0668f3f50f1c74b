"""Baseline (b): the floor a Faust design starts from.

One agent over the same input topics as Kairos, configured by the very same
:func:`app.worker.create_app` (same broker accommodations, commit interval, RocksDB
store, producer batch) and run by the same Worker class (no terminal spinner): per event
it does one RocksDB table update (a per-customer counter) and forwards one event in ten.
Everything Kairos does beyond this is the pipeline's own cost.

Run by ``bench/pipeline.py`` as a worker process (``python -m bench.trivial_faust``),
configured by the same ``KAIROS_*`` variables as ``kairos worker``.
"""

from __future__ import annotations

import os

import faust
from faust.types import StreamT

from app.garbage import freeze_startup_objects, tune_garbage_collector
from app.settings import Settings
from app.worker import create_app, faust_fixes
from app.worker.faust_app import Worker, collect_old_garbage
from schemas.topics import TopicNames


def build(settings: Settings) -> faust.App:
    app = create_app(settings)
    topics = TopicNames(settings.topic_prefix)
    raw = {"key_serializer": "raw", "value_serializer": "raw"}
    inputs = app.topic(*topics.event_inputs, partitions=settings.partitions, **raw)
    forward = app.topic(topics.decisions, partitions=settings.partitions, **raw)
    counts = app.Table(
        "trivial_counts", default=int, partitions=settings.partitions, key_type=bytes
    )

    seen = [0]

    async def count_and_forward(stream: StreamT[bytes]) -> None:
        async for event in stream.events():
            key = event.message.key or b""
            counts[key] += 1
            seen[0] += 1
            if seen[0] % 10 == 0:
                await forward.send(key=key, value=event.message.value)

    app.agent(inputs, name="count_and_forward", concurrency=1)(count_and_forward)

    @app.page("/readyz")
    async def readyz(web: faust.web.View, request: faust.web.Request) -> faust.web.Response:
        return web.json({"ready": True})

    @app.page("/count")
    async def count(web: faust.web.View, request: faust.web.Request) -> faust.web.Response:
        return web.json({"events": seen[0]})

    return app


#: Set to 0 for stock Faust as faust-streaming ships it — its own per-message delivery (only
#: the fixes of lost events) and Python's garbage collector settings: the floor of a Faust
#: design. Otherwise the agent runs as Kairos runs a worker: every Faust fix, the worker's
#: garbage collector settings.
SPEED_FIXES = "KAIROS_BENCH_FAUST_SPEED_FIXES"

if __name__ == "__main__":
    as_kairos = os.environ.get(SPEED_FIXES, "1") != "0"
    faust_fixes.apply(speed=as_kairos)  # before create_app's: the first call decides
    settings = Settings()
    if as_kairos:
        tune_garbage_collector(settings.gc_threshold)
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    app = build(settings)
    if as_kairos:
        collect_old_garbage(app, settings.gc_full_interval_s)
        freeze_startup_objects()
    Worker(app, loglevel="warning", quiet=True).execute_from_commandline()
