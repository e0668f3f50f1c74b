"""docker-compose.yml: the services, their ordering, their settings, the files they mount.

There is no Docker engine where the tests run, so the stack is checked statically: parsed
here (ruamel.yaml, the project's YAML library, which resolves `<<` merge keys as compose
does), and validated by a real compose client with `config -q` when one is installed.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML
from ruamel.yaml.nodes import MappingNode, Node

from app.settings import Settings
from tests.ops import tools

REPO = tools.REPO
COMPOSE_FILE = REPO / "docker-compose.yml"
PROMETHEUS_CONFIG = REPO / "ops" / "prometheus" / "prometheus.yml"
WORKERS = ("kairos-worker-1", "kairos-worker-2")
CONSOLE = "kairos-console"
KAIROS_IMAGE_SERVICES = ("topic-init", *WORKERS, "generator", CONSOLE)
STATE_DIR = "/var/lib/kairos"


def _load(path: Path) -> dict[str, Any]:
    loaded: dict[str, Any] = YAML(typ="safe", pure=True).load(path.read_text())
    return loaded


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return _load(COMPOSE_FILE)


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = compose["services"]
    return found


def _environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment", {})
    if isinstance(env, list):  # the KEY=value list form
        env = dict(item.split("=", 1) for item in env)
    return {key: str(value) for key, value in env.items()}


def _interpolated(value: str) -> str:
    """``${VAR:-default}`` as compose resolves it with VAR unset (how CI and tests see it)."""
    return re.sub(r"\$\{\w+:?-([^}]*)\}", r"\1", value)


def _bind_mounts(service: dict[str, Any]) -> list[tuple[str, str]]:
    """(source, target) of every bind mount, short or long syntax."""
    mounts = []
    for volume in service.get("volumes", []):
        if isinstance(volume, dict):
            if volume.get("type") == "bind":
                mounts.append((volume["source"], volume["target"]))
        elif volume.startswith((".", "/")):
            source, target = volume.split(":")[:2]
            mounts.append((source, target))
    return mounts


def _named_volumes(service: dict[str, Any]) -> dict[str, str]:
    """Target -> named volume, for the service's named volume mounts."""
    named = {}
    for volume in service.get("volumes", []):
        if isinstance(volume, dict):
            if volume.get("type", "volume") == "volume":
                named[volume["target"]] = volume["source"]
        elif not volume.startswith((".", "/")):
            source, target = volume.split(":")[:2]
            named[target] = source
    return named


def test_the_stack_has_its_services(services: dict[str, Any]) -> None:
    assert set(services) == {
        "kafka",
        "topic-init",
        *WORKERS,
        "generator",
        CONSOLE,
        "prometheus",
        "grafana",
    }


def test_the_workers_share_one_anchor_and_differ_only_where_they_must() -> None:
    """Both merge the same `x-kairos-worker` node, so they cannot drift apart."""
    root = YAML().compose(COMPOSE_FILE.read_text())
    assert isinstance(root, MappingNode)
    top = {key.value: value for key, value in root.value}
    anchor = top["x-kairos-worker"]
    assert anchor.anchor == "worker"
    service_nodes = {key.value: value for key, value in top["services"].value}
    for worker in WORKERS:
        merged: list[Node] = [
            value for key, value in service_nodes[worker].value if key.value == "<<"
        ]
        assert merged and merged[0] is anchor, f"{worker} does not merge *worker"


def test_the_two_workers_are_configured_alike(services: dict[str, Any]) -> None:
    first, second = (dict(services[name]) for name in WORKERS)
    per_worker = {"hostname", "environment", "volumes", "ports"}
    assert {k: v for k, v in first.items() if k not in per_worker} == {
        k: v for k, v in second.items() if k not in per_worker
    }
    env_1, env_2 = _environment(first), _environment(second)
    assert env_1.pop("KAIROS_WEB_ADVERTISED_HOST") == "kairos-worker-1"
    assert env_2.pop("KAIROS_WEB_ADVERTISED_HOST") == "kairos-worker-2"
    assert env_1 == env_2


def test_each_worker_keeps_its_own_state_volume(
    compose: dict[str, Any], services: dict[str, Any]
) -> None:
    volumes = [_named_volumes(services[name]).get(STATE_DIR) for name in WORKERS]
    assert all(volumes), f"every worker mounts a named volume at {STATE_DIR}: {volumes}"
    assert len(set(volumes)) == len(volumes), f"workers share a state volume: {volumes}"
    assert set(volumes) <= set(compose["volumes"])
    for name in WORKERS:
        assert _environment(services[name])["KAIROS_STATE_DIR"] == STATE_DIR


def test_the_image_keeps_state_where_the_volumes_are() -> None:
    dockerfile = (REPO / "Dockerfile").read_text()
    assert f"KAIROS_STATE_DIR={STATE_DIR}" in dockerfile
    assert f'VOLUME ["{STATE_DIR}"]' in dockerfile


def test_workers_start_after_topic_init_completes(services: dict[str, Any]) -> None:
    for name in WORKERS:
        depends = services[name]["depends_on"]
        assert depends["topic-init"]["condition"] == "service_completed_successfully"
        assert depends["kafka"]["condition"] == "service_healthy"
    assert services["topic-init"].get("restart", "no") == "no"


def test_topic_init_waits_for_a_healthy_kafka(services: dict[str, Any]) -> None:
    assert services["topic-init"]["depends_on"]["kafka"]["condition"] == "service_healthy"
    assert services["kafka"]["healthcheck"]["test"]


def test_kafka_is_a_single_kraft_node_that_creates_no_topics_itself(
    services: dict[str, Any],
) -> None:
    kafka = services["kafka"]
    env = _environment(kafka)
    assert re.fullmatch(r"apache/kafka:(3\.9|4\.\d+)\.\d+", kafka["image"])
    assert env["KAFKA_PROCESS_ROLES"] == "broker,controller"
    assert env["KAFKA_CONTROLLER_QUORUM_VOTERS"] == f"{env['KAFKA_NODE_ID']}@kafka:9093"
    assert env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"
    assert "PLAINTEXT://kafka:9092" in env["KAFKA_ADVERTISED_LISTENERS"]
    assert _named_volumes(kafka).get(env["KAFKA_LOG_DIRS"]), "Kafka's data is on a volume"


def test_the_kairos_services_agree_on_topics(services: dict[str, Any]) -> None:
    """topic-init creates what the workers and the generator then use."""
    shared = (
        "KAIROS_BROKER_URL",
        "KAIROS_APP_ID",
        "KAIROS_TOPIC_PREFIX",
        "KAIROS_PARTITIONS",
        "KAIROS_REPLICATION_FACTOR",
    )
    seen = {
        name: tuple(_environment(services[name])[key] for key in shared)
        for name in KAIROS_IMAGE_SERVICES
    }
    assert len(set(seen.values())) == 1, seen
    assert _environment(services["topic-init"])["KAIROS_BROKER_URL"] == "kafka://kafka:9092"


@pytest.mark.parametrize("name", KAIROS_IMAGE_SERVICES)
def test_kairos_environment_is_valid_settings(
    name: str, services: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every KAIROS_* variable is a settings field, and the values validate."""
    env = _environment(services[name])
    unknown = sorted(
        key
        for key in env
        if key.startswith("KAIROS_")
        and key.removeprefix("KAIROS_").lower() not in Settings.model_fields
    )
    assert not unknown, f"{name}: not settings in app/settings.py: {unknown}"
    for key in [k for k in os.environ if k.startswith("KAIROS_")]:
        monkeypatch.delenv(key)
    for key, value in env.items():
        monkeypatch.setenv(key, _interpolated(value))
    settings = Settings()
    assert settings.broker_flavor == "kafka"
    if name in WORKERS:
        assert settings.web_host == "0.0.0.0"
        assert settings.customer_api_token is None, "off unless the host sets a token"


def test_the_generator_and_the_console_run_only_under_their_profiles(
    services: dict[str, Any],
) -> None:
    assert services["generator"]["profiles"] == ["generator"]
    assert services[CONSOLE]["profiles"] == ["console"]
    with_profiles = {name for name, service in services.items() if service.get("profiles")}
    assert with_profiles == {"generator", CONSOLE}


def test_the_console_reads_the_workers_and_keeps_its_store_on_a_volume(
    services: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """It asks every worker's customer API, with their token, and survives a restart."""
    console = services[CONSOLE]
    env = _environment(console)
    for key in [k for k in os.environ if k.startswith("KAIROS_")]:
        monkeypatch.delenv(key)
    for key, value in env.items():
        monkeypatch.setenv(key, _interpolated(value))
    settings = Settings()
    assert settings.console_token is None, "no token of its own: the host must set one"
    assert settings.console_host == "0.0.0.0"  # inside its container; the host port is loopback
    urls = settings.console_worker_urls.split(";")
    assert urls == [f"http://{w}:{_environment(services[w])['KAIROS_WEB_PORT']}" for w in WORKERS]
    assert (
        env["KAIROS_CUSTOMER_API_TOKEN"]
        == _environment(services[WORKERS[0]])["KAIROS_CUSTOMER_API_TOKEN"]
    )
    store = Path(str(settings.console_store_path)).parent.as_posix()
    volumes = [str(v) for v in console["volumes"]]
    assert volumes == [f"kairos-console-store:{store}"]
    assert str(settings.console_port) in console["healthcheck"]["test"][-1]


@pytest.mark.parametrize("name", KAIROS_IMAGE_SERVICES)
def test_kairos_services_run_existing_cli_commands(name: str, services: dict[str, Any]) -> None:
    from app.cli import parser

    command = [str(part) for part in services[name]["command"]]
    try:
        parser().parse_args(command)
    except SystemExit as exc:  # argparse's way of refusing
        pytest.fail(f"{name}: `kairos {' '.join(command)}` is not a kairos command ({exc})")


def test_kairos_services_use_the_image_built_here(services: dict[str, Any]) -> None:
    images = {services[name]["image"] for name in KAIROS_IMAGE_SERVICES}
    assert len(images) == 1
    for name in KAIROS_IMAGE_SERVICES:
        assert services[name]["build"] == "."


def test_third_party_images_are_pinned(services: dict[str, Any]) -> None:
    for name, service in services.items():
        if name in KAIROS_IMAGE_SERVICES:
            continue
        image = service["image"]
        repository, _, tag = image.rpartition(":")
        assert repository and tag and tag != "latest", f"{name}: pin {image} to a version"
        assert re.search(r"\d+\.\d+\.\d+", tag), f"{name}: pin a full version, not {tag}"


def test_host_ports_are_bound_to_loopback_only(services: dict[str, Any]) -> None:
    for name, service in services.items():
        for port in service.get("ports", []):
            if isinstance(port, dict):
                assert port.get("host_ip") == "127.0.0.1", f"{name}: {port}"
            else:
                assert str(port).startswith("127.0.0.1:"), f"{name}: {port} is open to all"
        assert "network_mode" not in service, f"{name}: host networking bypasses the above"


def test_prometheus_scrapes_both_workers(services: dict[str, Any]) -> None:
    config = _load(PROMETHEUS_CONFIG)
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    kairos = jobs["kairos"]
    assert kairos.get("metrics_path", "/metrics") == "/metrics"
    interval = kairos.get("scrape_interval", config["global"]["scrape_interval"])
    assert interval == "5s"
    targets = {target for static in kairos["static_configs"] for target in static["targets"]}
    expected = {f"{name}:{_environment(services[name])['KAIROS_WEB_PORT']}" for name in WORKERS}
    assert targets == expected
    assert config["rule_files"] == ["alerts.yml"]


def test_every_file_mounted_from_ops_exists(services: dict[str, Any]) -> None:
    mounts = [
        (name, source, target)
        for name, service in services.items()
        for source, target in _bind_mounts(service)
    ]
    assert mounts, "Prometheus and Grafana mount their configuration from ./ops"
    for name, source, target in mounts:
        assert source.startswith("./ops/"), f"{name} mounts {source}: keep mounts under ops/"
        assert (REPO / source).exists(), f"{name} mounts {source} (at {target}), which is missing"


def test_grafana_loads_the_dashboard_from_where_it_is_mounted(services: dict[str, Any]) -> None:
    grafana = services["grafana"]
    mounted = {target: source for source, target in _bind_mounts(grafana)}
    provider = _load(REPO / "ops/grafana/provisioning/dashboards/kairos.yml")["providers"][0]
    assert mounted[provider["options"]["path"]] == "./ops/grafana/dashboards"
    datasource = _load(REPO / "ops/grafana/provisioning/datasources/prometheus.yml")
    (prometheus,) = datasource["datasources"]
    assert prometheus["url"] == "http://prometheus:9090"
    assert prometheus["uid"] == "kairos-prometheus"


def test_a_compose_client_accepts_the_file() -> None:
    """`config -q` validates the file against the compose schema; it needs no engine."""
    result = tools.run([*tools.compose(), "-f", COMPOSE_FILE, "config", "-q"])
    assert result.returncode == 0, result.stderr or result.stdout
    with_profile = tools.run(
        [*tools.compose(), "-f", COMPOSE_FILE, "--profile", "generator", "config", "-q"]
    )
    assert with_profile.returncode == 0, with_profile.stderr or with_profile.stdout
