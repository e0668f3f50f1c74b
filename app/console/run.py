"""``kairos console`` assembled: the store, its follower, the web server, until a signal.

The console is a process of its own, apart from the workers: it can run on another host,
behind another proxy, with other people's access, and it takes no partition from the
workers (its consumer is assigned the topics it reads, in a group of its own). It starts
serving at once from what its store holds and catches up from Kafka behind the pages,
which say how far behind they are. SIGINT (Ctrl-C) and SIGTERM stop it cleanly: the web
server stops taking requests, the follower writes the batch in hand, the store is closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import signal
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from agents.clock import utc_now, warped
from app.console.audit import KafkaAuditSink
from app.console.auth import Credentials, Sessions, read_users, session_key
from app.console.customers import WorkerCustomerApi, worker_urls
from app.console.deploys import RegistryReader
from app.console.web import Console, ConsoleOptions, create_app, serve
from app.errors import ConfigurationError
from app.kafka.rules_topic import RulesTopic, bootstrap_servers
from app.settings import Settings
from schemas.topics import TopicNames

log = logging.getLogger(__name__)

#: The file beside the store holding the generated customer-id secret.
SECRET_FILE = "customer-id.key"


def customer_id_secret(settings: Settings) -> bytes:
    """The key the store hashes customer ids with: configured, or generated and kept.

    Generated once (32 random bytes, hex) into ``customer-id.key`` beside the store, created
    with mode 0600 so only the console's user reads it. The store refuses a file written
    with another key, so losing this file means deleting the store too (it is rebuilt from
    the topics).
    """
    if settings.console_customer_id_secret is not None:
        return settings.console_customer_id_secret.get_secret_value().encode()
    path = settings.console_store_path.parent / SECRET_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        secret = path.read_text(encoding="ascii").strip()
        if len(secret) < 32:
            raise ConfigurationError(
                f"{path} holds no usable secret; delete it together with the store "
                f"{settings.console_store_path}, or set KAIROS_CONSOLE_CUSTOMER_ID_SECRET"
            ) from None
        return secret.encode()
    secret = secrets.token_hex(32)
    with os.fdopen(descriptor, "w", encoding="ascii") as handle:
        handle.write(secret + "\n")
    log.info("Generated the console's customer-id secret in %s", path)
    return secret.encode()


def backtest_dir(settings: Settings) -> Path:
    """The backtest page's directory: configured, else ``backtests`` beside the store."""
    if settings.console_backtest_dir is not None:
        return settings.console_backtest_dir
    return settings.console_store_path.parent / "backtests"


def credentials(settings: Settings) -> Credentials:
    """Sign-in as configured; a ConfigurationError when neither way is."""
    users = read_users(settings.console_users_file) if settings.console_users_file else None
    return Credentials(settings.console_token, users)


def console_clock(settings: Settings) -> Callable[[], datetime]:
    """The windows' "now": the worker's clock, simulated in the demo, else real time."""
    if settings.clock_origin is None:
        return utc_now
    return warped(settings.clock_origin, settings.clock_wall_origin, settings.clock_speed)


def url_of(settings: Settings) -> str:
    host = settings.console_host
    shown = "127.0.0.1" if host in ("0.0.0.0", "") else host  # every interface: show one
    return f"http://{shown}:{settings.console_port}"


def run_console(settings: Settings, announce: Callable[[str], None] = print) -> int:
    """Serve the console until SIGINT or SIGTERM; returns the exit code.

    Raises:
        ConfigurationError: no way to sign in, an unreadable users file, a bad secret file.
        ConsoleStoreError: the store cannot be opened (another console holds it, or it was
            written with another customer-id secret).

    """
    from app.console.backtests import Backtests
    from app.console.ingest import Follower
    from app.console.store import ConsoleStore

    sign_in = credentials(settings)  # before anything is opened: a misconfiguration is quick
    backtests = Backtests.at(
        backtest_dir(settings),
        settings.console_backtest_upload_max_mb * 2**20,
        bootstrap_rules=settings.rules_path if settings.rules_path.exists() else None,
    )
    topics = TopicNames(settings.topic_prefix)
    bootstrap = bootstrap_servers(settings.broker_url)
    store = ConsoleStore(settings.console_store_path, customer_id_secret(settings))
    audit = KafkaAuditSink(bootstrap, settings.console_audit_topic or topics.console_audit)
    follower = Follower(store, bootstrap, topics, settings.console_group_id)
    console = Console(
        store=store,
        rules=RegistryReader(RulesTopic.from_settings(settings, timeout=10.0)),
        customers=WorkerCustomerApi(
            worker_urls(settings.console_worker_urls), settings.customer_api_token
        ),
        audit=audit,
        credentials=sign_in,
        sessions=Sessions(session_key(settings.console_session_secret)),
        options=ConsoleOptions(
            refresh_s=settings.console_refresh_s,
            cookie_secure=settings.console_cookie_secure,
            name=f"{settings.console_host}:{settings.console_port}",
        ),
        backtests=backtests,
        clock=console_clock(settings),
    )
    try:
        follower.start()
        asyncio.run(_serve_until_stopped(console, settings, announce))
    finally:
        backtests.close()
        follower.stop()
        audit.close()
        store.close()
    return 0


async def _serve_until_stopped(
    console: Console, settings: Settings, announce: Callable[[str], None]
) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    runner = await serve(create_app(console), settings.console_host, settings.console_port)
    ways = [
        way
        for way, on in (
            ("the token (KAIROS_CONSOLE_TOKEN)", console.credentials.accepts_token),
            ("a user of KAIROS_CONSOLE_USERS_FILE", console.credentials.accepts_passwords),
        )
        if on
    ]
    announce(f"Kairos console on {url_of(settings)} — sign in with {' or '.join(ways)}")
    try:
        await stop.wait()
    finally:
        announce("Stopping the console...")
        with contextlib.suppress(Exception):
            await runner.cleanup()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)
