"""docker-compose.yml, checked statically against the services' own code:
every variable set on a service is a setting it reads, the production values
pass the settings' validation, secrets fail loudly when missing, ports and
health checks agree with the settings, start-up order follows health."""

from __future__ import annotations

import importlib.resources
import json
import re
from pathlib import PurePosixPath
from urllib.parse import urlsplit

import jsonschema
import pytest

from tests.deploy.support import (
    INFRA,
    ROOT,
    SERVICES,
    MissingVariable,
    build_settings,
    default_port,
    env_names,
    environment,
    listening_ports,
    interpolate,
    interpolate_tree,
    load_compose,
    operator_env,
    path_fields,
    required_secrets,
    required_variables,
    secret_fields,
    settings_class,
)

RAW = load_compose()


@pytest.fixture(scope="module")
def compose() -> dict:
    return interpolate_tree(RAW, operator_env(RAW))


def test_file_follows_the_compose_specification(compose):
    """The Compose Specification's schema (as bundled by check-jsonschema): a misspelt key fails here."""
    schema = json.loads(
        (importlib.resources.files("check_jsonschema.builtin_schemas.vendor") / "compose-spec.json").read_text("utf-8")
    )
    errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in jsonschema.Draft7Validator(schema).iter_errors(compose)]
    assert not errors, "\n".join(errors)


def test_every_component_is_there():
    assert set(RAW["services"]) == {*INFRA, *SERVICES}


def test_images_are_pinned():
    for name, service in RAW["services"].items():
        if "build" in service:
            continue
        image = service["image"]
        tag = image.rsplit(":", 1)[-1] if ":" in image.rsplit("/", 1)[-1] else ""
        assert tag and tag != "latest" and re.search(r"\d", tag), f"{name}: pin the image tag ({image})"


@pytest.mark.parametrize("name", SERVICES)
def test_app_service_sets_only_settings_it_reads(name):
    unknown = set(environment(RAW["services"][name])) - env_names(name)
    assert not unknown, f"{name} is given variables its settings class does not read: {sorted(unknown)}"


@pytest.mark.parametrize("name", SERVICES)
def test_app_service_production_config_passes_its_settings_validation(name, compose):
    env = environment(compose["services"][name])
    assert env["KEYMOMENT_ENV"] == "production"
    settings = build_settings(name, env)
    assert settings.host == "0.0.0.0", "inside a container the server must listen on all interfaces"
    if hasattr(settings, "routes_path"):
        settings.routes_path()  # alerts refuses to start in production without routing rules


@pytest.mark.parametrize("name", SERVICES)
def test_required_secrets_are_set_and_fail_loudly_when_missing(name):
    env = environment(RAW["services"][name])
    for secret in required_secrets(name):
        assert secret in env, f"{name}: required secret {secret} is not set"
        with pytest.raises(MissingVariable):
            interpolate(env[secret], {})  # `docker compose` stops with a message instead of starting


@pytest.mark.parametrize("name", SERVICES)
def test_no_secret_is_written_into_the_file(name):
    env = environment(RAW["services"][name])
    for secret in secret_fields(name) & set(env):
        assert "${" in env[secret], f"{name}: {secret} must come from the environment, not the file"


@pytest.mark.parametrize("missing", ["ADMIN_TOKEN", "LINK_SIGNING_KEY", "POSTGRES_PASSWORD", "GRAFANA_ADMIN_PASSWORD"])
def test_compose_refuses_to_render_without_a_secret(missing):
    env = operator_env(RAW)
    del env[missing]
    with pytest.raises(MissingVariable) as caught:
        interpolate_tree(RAW, env)
    assert caught.value.name == missing


@pytest.mark.parametrize("name", SERVICES)
def test_app_service_runs_its_own_command_hardened(name, compose):
    service = compose["services"][name]
    assert service["command"] == ["serve", name]
    assert "build" in service and service["build"]["dockerfile"] == "Dockerfile"
    uid = str(service["user"]).split(":")[0]
    assert uid.isdigit() and int(uid) != 0
    assert service["read_only"] is True
    assert service["cap_drop"] == ["ALL"]
    assert "no-new-privileges:true" in service["security_opt"]
    assert any(str(t).startswith("/tmp") for t in service["tmpfs"])


@pytest.mark.parametrize("name", SERVICES)
def test_app_service_port_and_readiness_check_match_settings(name, compose):
    service, port = compose["services"][name], default_port(name)
    env = environment(service)
    assert int(env.get("PORT", port)) == port
    container_ports = {int(str(p).rsplit(":", 1)[-1].split("/")[0]) for p in service["ports"]}
    assert container_ports == listening_ports(name, env)
    check = " ".join(service["healthcheck"]["test"])
    assert f"http://127.0.0.1:{port}/readyz" in check
    assert service["healthcheck"]["start_period"]


@pytest.mark.parametrize("name", SERVICES)
def test_app_service_starts_after_healthy_dependencies(name, compose):
    depends = compose["services"][name]["depends_on"]
    assert {"kafka", "postgres", "migrate"} <= set(depends)
    for dependency, how in depends.items():
        if dependency == "migrate":
            assert how["condition"] == "service_completed_successfully"
            continue
        assert how["condition"] == "service_healthy"
        assert "healthcheck" in compose["services"][dependency], f"{dependency} has no health check to wait for"


@pytest.mark.parametrize("name", ["survey", "alerts"])
def test_services_that_send_mail_wait_for_the_smtp_server(name, compose):
    assert compose["services"][name]["depends_on"]["mailpit"]["condition"] == "service_healthy"


def test_infrastructure_health_checks(compose):
    services = compose["services"]
    assert "pg_isready" in " ".join(services["postgres"]["healthcheck"]["test"])
    assert "kafka-broker-api-versions" in " ".join(services["kafka"]["healthcheck"]["test"])
    for name in INFRA:
        if name != "migrate":  # a one-shot step: it completes instead
            assert services[name]["healthcheck"]["test"], f"{name} has no health check"


@pytest.mark.parametrize("name", SERVICES)
def test_app_services_are_wired_to_the_compose_infrastructure(name, compose):
    env = environment(compose["services"][name])
    services = compose["services"]

    kafka = environment(services["kafka"])
    advertised = {urlsplit(listener).netloc for listener in kafka["KAFKA_ADVERTISED_LISTENERS"].split(",")}
    assert set(env["KAFKA_BOOTSTRAP_SERVERS"].split(",")) <= advertised
    assert kafka["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"  # services create topics and DLQs themselves

    postgres = environment(services["postgres"])
    dsn = urlsplit(env["DATABASE_URL"])
    assert (dsn.hostname, dsn.port, dsn.username, dsn.password, dsn.path.lstrip("/")) == (
        "postgres", 5432, postgres["POSTGRES_USER"], postgres["POSTGRES_PASSWORD"], postgres["POSTGRES_DB"],
    )

    if "smtp_host" in settings_class(name).model_fields:  # the services that send mail
        assert (env["SMTP_HOST"], int(env["SMTP_PORT"])) == ("mailpit", 1025)
    else:
        assert "SMTP_HOST" not in env


@pytest.mark.parametrize("name", SERVICES)
def test_files_named_by_settings_are_mounted(name, compose):
    service = compose["services"][name]
    env = environment(service)
    targets = [PurePosixPath(str(v).split(":")[1]) for v in service.get("volumes", [])]
    for field in path_fields(name) & set(env):
        path = PurePosixPath(env[field])
        assert any(path == t or t in path.parents for t in targets), f"{name}: {field}={path} is not mounted"


def test_prometheus_and_grafana_mount_the_deploy_files():
    volumes = {s: {str(v).split(":")[1]: str(v).split(":")[0] for v in RAW["services"][s]["volumes"]}
               for s in ("prometheus", "grafana")}
    assert volumes["prometheus"]["/etc/prometheus/prometheus.yml"] == "./deploy/prometheus/prometheus.yml"
    assert volumes["prometheus"]["/etc/prometheus/rules"] == "./deploy/prometheus/rules"
    assert volumes["grafana"]["/etc/grafana/provisioning"] == "./deploy/grafana/provisioning"
    assert volumes["grafana"]["/var/lib/grafana/dashboards"] == "./deploy/grafana/dashboards"
    assert (ROOT / "deploy/prometheus/prometheus.yml").is_file()


def test_kafka_forgets_events_before_the_consumers_forget_their_ids(compose):
    """A redelivered event must still find its processed_events row (the dedupe key)."""
    kafka_hours = int(environment(compose["services"]["kafka"])["KAFKA_LOG_RETENTION_HOURS"])
    for name in SERVICES:
        env = environment(compose["services"][name])
        days = int(env.get("PROCESSED_EVENTS_RETENTION_DAYS") or build_settings(name, env).processed_events_retention_days)
        assert kafka_hours < days * 24, f"{name}: dedupe window {days} d is not longer than Kafka's {kafka_hours} h"


def test_the_migration_step_runs_first_with_only_the_database(compose):
    """The same step as the Kubernetes Jobs: `keymoment migrate SERVICE` for every service,
    then the services start with MIGRATE_ON_START=false."""
    from keymoment.serve import MIGRATION_SECRETS, _service, migration_settings

    step = compose["services"]["migrate"]
    script = " ".join(step["entrypoint"])
    assert "python -m keymoment migrate $s || exit 1" in script  # compose's $$ is a literal $ for the shell
    assert all(name in script for name in SERVICES)
    assert step["depends_on"]["postgres"]["condition"] == "service_healthy"
    env = environment(step)
    assert set(env) == {"KEYMOMENT_ENV", *(s.upper() for s in MIGRATION_SECRETS)}
    for name in SERVICES:
        migration_settings(_service(name)[1])(**{k.lower(): v for k, v in env.items()})
        assert environment(compose["services"][name])["MIGRATE_ON_START"] == "false"
        assert environment(compose["services"][name])["DATABASE_URL"] == env["DATABASE_URL"]
