"""deploy/k8s: the base, every overlay and every overlay with every combination of the
components render offline; core objects validate strictly against the Kubernetes schemas,
custom resources against the CRD schemas of tests/deploy/crds; and the objects agree with
the code: settings the services read, secrets they use, topics they produce and consume,
ports, health endpoints, the rules and dashboards they are generated from."""

from __future__ import annotations

import functools
import itertools
import json
import secrets
import shutil
import subprocess
from pathlib import Path, PurePosixPath
from urllib.parse import urlsplit

import kubernetes_validate
import pytest
import yaml

from keymoment.serve import MIGRATION_SECRETS
from services.reporting import dashboards, rules
from tests.deploy.kustomize import build, index
from tests.deploy.support import (
    LIBPQ_ENV,
    ROOT,
    SERVICES,
    build_settings,
    default_port,
    env_names,
    listening_ports,
    load_generator,
    path_fields,
    required_secrets,
    secret_fields,
    secrets_used,
    service_topics,
)

K8S = ROOT / "deploy" / "k8s"
CRDS = Path(__file__).parent / "crds"
OVERLAYS = sorted(p.name for p in (K8S / "overlays").iterdir() if (p / "kustomization.yaml").is_file())
COMPONENTS = sorted(p.name for p in (K8S / "components").iterdir() if (p / "kustomization.yaml").is_file())
COMBINATIONS = [c for n in range(len(COMPONENTS) + 1) for c in itertools.combinations(COMPONENTS, n)]
# The oldest Kubernetes still commonly run and the newest the schemas bundle.
K8S_VERSIONS = ("1.30", kubernetes_validate.latest_version())
TARGETS = ["base", *(f"overlays/{o}" for o in OVERLAYS),
           *(f"overlays/{o}+{'+'.join(c)}" for o in OVERLAYS for c in COMBINATIONS if c)]
CORE_GROUPS = {"v1", "apps/v1", "batch/v1", "policy/v1", "networking.k8s.io/v1", "autoscaling/v2"}


@functools.cache
def render(target: str) -> tuple[dict, ...]:
    """A target's objects; ``overlays/X+a+b`` is the kustomization a user writes to add
    components a and b to overlay X (resources: [overlay], its namespace, components)."""
    if "+" not in target:
        return tuple(build(K8S / target))
    overlay, *components = target.split("+")
    namespace = yaml.safe_load((K8S / overlay / "kustomization.yaml").read_text())["namespace"]
    kustomization = {"resources": [overlay], "namespace": namespace, "components": [f"components/{c}" for c in components]}
    return tuple(build(K8S, kustomization))


@pytest.fixture(scope="module", params=TARGETS)
def rendered(request) -> tuple[str, list[dict]]:
    return request.param, [json.loads(json.dumps(o)) for o in render(request.param)]


def kinds(objects, kind: str) -> list[dict]:
    return [o for o in objects if o["kind"] == kind]


def named(objects, kind: str, name: str) -> dict:
    (found,) = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]
    return found


def deployments(objects) -> dict[str, dict]:
    """Deployments by the service they run (`keymoment serve SERVICE`)."""
    out = {}
    for deployment in kinds(objects, "Deployment"):
        (container,) = deployment["spec"]["template"]["spec"]["containers"]
        assert container["args"][0] == "serve", container["args"]
        out[container["args"][1]] = deployment
    return out


def migration_jobs(objects) -> dict[str, dict]:
    out = {}
    for job in kinds(objects, "Job"):
        (container,) = job["spec"]["template"]["spec"]["containers"]
        assert container["args"][0] == "migrate", container["args"]
        out[container["args"][1]] = job
    return out


def workloads(objects):
    """(service, kind, workload) of every Deployment and migration Job."""
    return [*((s, "Deployment", d) for s, d in deployments(objects).items()),
            *((s, "Job", j) for s, j in migration_jobs(objects).items())]


def named_port(container: dict, port: int | str) -> int:
    if isinstance(port, int):
        return port
    (match,) = [p["containerPort"] for p in container["ports"] if p["name"] == port]
    return match


def container_env(objects, container: dict) -> tuple[dict[str, str], dict[str, dict]]:
    """(plain values incl. ConfigMaps pulled in with envFrom, secretKeyRefs) of a container."""
    config_maps = {c["metadata"]["name"]: c.get("data", {}) for c in kinds(objects, "ConfigMap")}
    plain: dict[str, str] = {}
    for source in container.get("envFrom", []):
        name = source["configMapRef"]["name"]
        assert name in config_maps, f"envFrom names ConfigMap {name!r}, which is not rendered"
        plain.update(config_maps[name])
    refs: dict[str, dict] = {}
    for item in container.get("env", []):
        if "value" in item:
            assert "valueFrom" not in item, item
            plain[item["name"]] = item["value"]
        else:
            refs[item["name"]] = item["valueFrom"]["secretKeyRef"]
    return plain, refs


def partitions(objects) -> int:
    """The partition count of the topics: the KafkaTopics when declared, else what the services create."""
    topics = kinds(objects, "KafkaTopic")
    if topics:
        counts = {t["spec"]["partitions"] for t in topics if not t["metadata"]["name"].endswith(".dlq")}
        assert len(counts) == 1, counts
        return counts.pop()
    return int(named(objects, "ConfigMap", "keymoment-common")["data"]["KAFKA_TOPIC_PARTITIONS"])


# --- rendering and schemas -----------------------------------------------------------------

def test_every_overlay_and_component_is_found():
    assert {"dev", "production"} <= set(OVERLAYS)
    assert {"kafka-strimzi", "postgres-cnpg", "monitoring", "autoscaling"} <= set(COMPONENTS)
    assert len(COMBINATIONS) == 2 ** len(COMPONENTS)


@functools.cache
def core_errors(text: str) -> tuple[str, ...]:
    obj = json.loads(text)
    errors = []
    for version in K8S_VERSIONS:
        try:
            kubernetes_validate.validate(obj, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            errors.append(f"{obj['kind']}/{obj['metadata']['name']} invalid for {version}: {exc.message}")
    return tuple(errors)


def test_core_objects_validate_against_kubernetes_schemas(rendered):
    where, objects = rendered
    index(objects)  # no duplicates
    for obj in objects:
        if obj["apiVersion"] in CORE_GROUPS:
            assert not core_errors(json.dumps(obj, sort_keys=True)), f"{where}: {core_errors(json.dumps(obj, sort_keys=True))}"
        else:
            assert obj["apiVersion"].split("/")[0] in {"kafka.strimzi.io", "postgresql.cnpg.io", "keda.sh",
                                                       "monitoring.coreos.com"}, f"{where}: {obj['apiVersion']}"


def test_the_schema_check_is_strict():
    """A misspelt field must fail, or the validation above proves nothing."""
    deployment = json.loads(json.dumps(named(render("base"), "Deployment", "survey")))
    deployment["spec"]["template"]["spec"]["containers"][0]["readinessProbes"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, K8S_VERSIONS[-1], strict=True)


@pytest.fixture(scope="session")
def crd_validator():
    """``validate(objects) -> errors per object`` with the pinned CRD schemas (tests/deploy/crds)."""
    node, npm = shutil.which("node"), shutil.which("npm")
    assert node and npm, "node and npm are needed to validate the custom resources (Debian: nodejs npm)"
    lock = CRDS / "package-lock.json"
    stamp = CRDS / "node_modules" / ".installed-lock"
    if not stamp.is_file() or stamp.read_text() != lock.read_text():
        subprocess.run([npm, "ci", "--no-audit", "--no-fund", "--ignore-scripts"], cwd=CRDS, check=True,
                       capture_output=True, timeout=300)
        stamp.write_text(lock.read_text())

    def validate(objects: list[dict]) -> list[list[str]]:
        result = subprocess.run([node, "validate.mjs"], cwd=CRDS, input=json.dumps(objects), capture_output=True,
                                text=True, timeout=120, check=False)
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout)

    return validate


def test_custom_resources_validate_against_their_crd_schemas(crd_validator):
    unique = {}
    for target in TARGETS:
        for obj in render(target):
            if obj["apiVersion"] not in CORE_GROUPS:
                unique[json.dumps(obj, sort_keys=True)] = (target, obj)
    assert {o["kind"] for _, o in unique.values()} >= {
        "Kafka", "KafkaNodePool", "KafkaTopic", "KafkaUser", "Cluster", "ScaledObject", "TriggerAuthentication",
        "ServiceMonitor", "PrometheusRule"}
    errors = crd_validator([o for _, o in unique.values()])
    bad = [f"{t}: {o['kind']}/{o['metadata']['name']}: {e}" for (t, o), e in zip(unique.values(), errors) if e]
    assert not bad, "\n".join(bad)


def test_the_crd_check_catches_errors(crd_validator):
    topic = json.loads(json.dumps(render("overlays/production+kafka-strimzi")[-1]))
    topic = next(o for o in render("overlays/production+kafka-strimzi") if o["kind"] == "KafkaTopic")
    broken = [json.loads(json.dumps(topic)) for _ in range(3)]
    broken[0]["spec"]["partitions"] = "six"
    del broken[1]["spec"]
    broken[2]["kind"] = "KafkaTopics"
    assert all(crd_validator(broken)), "a wrong type, a missing required field and an unknown kind must all fail"


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl not installed; the Python rendering is still checked")
@pytest.mark.parametrize("target", ["base", *(f"overlays/{o}" for o in OVERLAYS)])
def test_renderer_agrees_with_kubectl_kustomize(target):
    result = subprocess.run(
        ["kubectl", "kustomize", str(K8S / target)], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    expected = index([d for d in yaml.safe_load_all(result.stdout) if d])
    assert index(build(K8S / target)) == expected


# --- workloads -----------------------------------------------------------------------------

def test_one_deployment_service_pdb_and_migration_job_per_service(rendered):
    _, objects = rendered
    assert set(deployments(objects)) == set(SERVICES)
    assert set(migration_jobs(objects)) == set(SERVICES)
    for kind in ("Service", "PodDisruptionBudget"):
        assert {o["metadata"]["name"] for o in kinds(objects, kind)} == set(SERVICES)


def test_no_secret_is_committed(rendered):
    _, objects = rendered
    assert not kinds(objects, "Secret"), "secrets are created out of band or by the operators (deploy/k8s/README.md)"


def test_overlays_set_namespace_and_a_pinned_image(rendered):
    where, objects = rendered
    if where == "base":
        return
    for obj in objects:
        assert obj["metadata"].get("namespace"), f"{where}: {obj['kind']}/{obj['metadata']['name']} has no namespace"
    for _, _, workload in workloads(objects):
        image = workload["spec"]["template"]["spec"]["containers"][0]["image"]
        tag = image.rsplit(":", 1)[-1] if ":" in image.rsplit("/", 1)[-1] else ""
        assert ("@sha256:" in image) or (tag and tag != "latest"), f"{where}: unpinned image {image}"


def test_workloads_are_hardened(rendered):
    where, objects = rendered
    for service, kind, workload in workloads(objects):
        pod = workload["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["runAsUser"] != 0
        assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
        assert pod["automountServiceAccountToken"] is False
        # Service links would inject e.g. ALERTS_PORT=tcp://... into every pod, and
        # pydantic-settings would read any that matches a field name.
        assert pod["enableServiceLinks"] is False
        (container,) = pod["containers"]
        ctx = container["securityContext"]
        assert ctx["readOnlyRootFilesystem"] is True
        assert ctx["allowPrivilegeEscalation"] is False
        assert ctx["capabilities"]["drop"] == ["ALL"]
        for k in ("requests", "limits"):
            assert {"cpu", "memory"} <= set(container["resources"][k]), f"{where}/{kind}/{service}: {k}"
        mounts = {m["mountPath"] for m in container["volumeMounts"]}
        assert "/tmp" in mounts, f"{where}/{service}: read-only root needs a writable /tmp"
        mounted = {m["name"] for m in container["volumeMounts"]}
        assert mounted <= {v["name"] for v in pod["volumes"]}, f"{where}/{kind}/{service}: mount without a volume"


def test_ports_and_probes_match_the_service(rendered):
    _, objects = rendered
    services = {s["metadata"]["name"]: s for s in kinds(objects, "Service")}
    for name, deployment in deployments(objects).items():
        (container,) = deployment["spec"]["template"]["spec"]["containers"]
        port = default_port(name)
        plain, _ = container_env(objects, container)
        assert int(plain.get("PORT", port)) == port
        assert {p["containerPort"] for p in container["ports"]} == listening_ports(name, plain)
        assert named_port(container, "http") == port
        for probe, path in (("startupProbe", "/healthz"), ("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
            get = container[probe]["httpGet"]
            assert get["path"] == path, f"{name}: {probe}"
            assert named_port(container, get["port"]) == port, f"{name}: {probe} port"
        annotations = deployment["spec"]["template"]["metadata"]["annotations"]
        assert (annotations["prometheus.io/port"], annotations["prometheus.io/path"]) == (str(port), "/metrics")
        service_ports = {p["name"]: p for p in services[name]["spec"]["ports"]}
        assert service_ports["http"]["port"] == port  # in-cluster URLs look like the compose ones
        for service_port in service_ports.values():
            assert named_port(container, service_port["targetPort"]) == service_port["port"]
        assert {p["port"] for p in service_ports.values()} == listening_ports(name, plain)


def pod_labels(objects) -> dict[str, dict]:
    """Labels of every pod template, by workload name."""
    return {w["metadata"]["name"]: w["spec"]["template"]["metadata"]["labels"] for _, _, w in workloads(objects)}


def selects(selector: dict, labels: dict) -> bool:
    if not selector.get("matchLabels") and not selector.get("matchExpressions") and "matchLabels" not in selector \
            and "matchExpressions" not in selector:
        return selector.items() <= labels.items()  # a Service's plain selector
    if not selector.get("matchLabels", {}).items() <= labels.items():
        return False
    for expr in selector.get("matchExpressions", []):
        assert expr["operator"] == "In", expr
        if labels.get(expr["key"]) not in expr["values"]:
            return False
    return True


def test_selectors_select_the_pods(rendered):
    _, objects = rendered
    pods = pod_labels(objects)

    def selected(selector: dict) -> set[str]:
        return {name for name, labels in pods.items() if selects(selector, labels)}

    for deployment in kinds(objects, "Deployment"):
        assert deployment["spec"]["selector"]["matchLabels"].items() <= deployment["spec"]["template"]["metadata"]["labels"].items()
    for service in kinds(objects, "Service"):
        assert selected(service["spec"]["selector"]) == {service["metadata"]["name"]}, "a migration pod must not be an endpoint"
    for pdb in kinds(objects, "PodDisruptionBudget"):
        assert selected(pdb["spec"]["selector"]) == {pdb["metadata"]["name"]}
    scraped: list[str] = []
    for monitor in kinds(objects, "ServiceMonitor"):
        matched = {s["metadata"]["name"] for s in kinds(objects, "Service") if selects(monitor["spec"]["selector"], s["metadata"]["labels"])}
        scraped += matched
        assert [(e["port"], e["path"]) for e in monitor["spec"]["endpoints"]] == [("http", "/metrics")]
        # The scrape token goes where /metrics requires it (METRICS_TOKEN set), and only there.
        token_refs = {s: container_env(objects, deployments(objects)[s]["spec"]["template"]["spec"]["containers"][0])[1]
                      .get("METRICS_TOKEN") for s in matched}
        for endpoint in monitor["spec"]["endpoints"]:
            sent = endpoint.get("authorization", {}).get("credentials")
            assert all(ref == sent for ref in token_refs.values()), (monitor["metadata"]["name"], token_refs, sent)
    if kinds(objects, "ServiceMonitor"):
        assert sorted(scraped) == sorted(SERVICES), "each service is scraped by exactly one ServiceMonitor"


def test_network_policies_admit_only_from_where_each_route_is_used(rendered):
    where, objects = rendered
    policies = kinds(objects, "NetworkPolicy")
    pods = pod_labels(objects)
    deny = [p for p in policies if not p["spec"].get("ingress") and not p["spec"].get("egress")]
    assert len(deny) == 1 and set(deny[0]["spec"]["policyTypes"]) == {"Ingress", "Egress"}
    assert {n for n, labels in pods.items() if selects(deny[0]["spec"]["podSelector"], labels)} == set(pods)

    def admitted(service: str, port: str) -> set[str]:
        """Namespaces (or 'anywhere') that may reach ``port`` of the service's pods."""
        out = set()
        for policy in policies:
            if not selects(policy["spec"]["podSelector"], pods[service]):
                continue
            for rule in policy["spec"].get("ingress", []):
                assert rule.get("from"), f"{where}: {policy['metadata']['name']} admits without a from clause"
                if port not in [p["port"] for p in rule["ports"]]:
                    continue
                for peer in rule["from"]:
                    if "ipBlock" in peer:
                        out.add("anywhere")
                    else:
                        out.add(peer["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"])
        return out

    assert admitted("intake", "http") == {"ingress-nginx", "monitoring"}
    assert admitted("survey", "http") == admitted("alerts", "http") == {"ingress-nginx", "keymoment-ops", "monitoring"}
    assert admitted("reporting", "http") == {"keymoment-ops", "monitoring"}
    assert admitted("intake", "smtp") == {"anywhere"}  # mail arrives from outside
    for name, deployment in deployments(objects).items():
        (container,) = deployment["spec"]["template"]["spec"]["containers"]
        for port in container["ports"]:
            assert admitted(name, port["name"]), f"{where}/{name}: listening port {port['name']} is unreachable"


def test_egress_is_only_dns_kafka_postgres_and_smtp(rendered):
    where, objects = rendered
    pods = pod_labels(objects)
    mail = named(objects, "ConfigMap", "keymoment-mail")["data"]
    allowed: dict[str, set[int]] = {name: set() for name in pods}
    for policy in kinds(objects, "NetworkPolicy"):
        for rule in policy["spec"].get("egress", []):
            for name, labels in pods.items():
                if selects(policy["spec"]["podSelector"], labels):
                    allowed[name] |= {p["port"] for p in rule["ports"]}
    kafka = {9093} if kinds(objects, "Kafka") else {9092, 9093}
    for service in SERVICES:
        expected = {53, 5432} | kafka | ({int(mail["SMTP_PORT"])} if service in ("survey", "alerts") else set())
        assert allowed[service] == expected, f"{where}/{service}"
        assert allowed[f"{service}-migrate"] <= {53, 5432}, f"{where}: the migration reaches only DNS and PostgreSQL"


def test_autoscaled_deployments_leave_replicas_to_the_autoscaler(rendered):
    _, objects = rendered
    by_name = {d["metadata"]["name"]: d for d in kinds(objects, "Deployment")}
    targets = [h["spec"]["scaleTargetRef"]["name"] for h in kinds(objects, "HorizontalPodAutoscaler")]
    targets += [s["spec"]["scaleTargetRef"]["name"] for s in kinds(objects, "ScaledObject")]
    assert "intake" in targets and len(targets) == len(set(targets)), "one autoscaler per Deployment"
    for name in targets:
        assert "replicas" not in by_name[name]["spec"], f"{name}: a fixed replica count fights the autoscaler on every apply"
    for hpa in kinds(objects, "HorizontalPodAutoscaler"):
        assert 1 <= hpa["spec"]["minReplicas"] <= hpa["spec"]["maxReplicas"]


def test_consumer_replicas_fit_the_partitions(rendered):
    """A consumer replica beyond the partition count owns no partition; the PDB keeps one
    replica down at most, and production keeps two of each."""
    where, objects = rendered
    count = partitions(objects)
    consumers = {s for s, t in service_topics().items() if t["consumes"]}
    for name, deployment in deployments(objects).items():
        replicas = deployment["spec"].get("replicas")
        if name in consumers and replicas is not None:
            assert 1 <= replicas <= count, f"{where}/{name}: {replicas} replicas for {count} partitions"
        if "production" in where and replicas is not None:
            assert replicas >= 2, f"{where}/{name}: one replica is an outage at every node drain"
        pdb = named(objects, "PodDisruptionBudget", name)
        assert pdb["spec"]["maxUnavailable"] == 1
    for scaled in kinds(objects, "ScaledObject"):
        name = scaled["spec"]["scaleTargetRef"]["name"]
        assert name in consumers
        assert 2 <= scaled["spec"]["minReplicaCount"] <= scaled["spec"]["maxReplicaCount"] <= count
        (trigger,) = scaled["spec"]["triggers"]
        assert trigger["type"] == "kafka" and trigger["metadata"]["consumerGroup"] == service_topics()[name]["group"]
        auth = named(objects, "TriggerAuthentication", trigger["authenticationRef"]["name"])
        assert {r["parameter"] for r in auth["spec"]["secretTargetRef"]} >= {"password"}


# --- settings and secrets ------------------------------------------------------------------

def database_login_is_split(plain: dict, refs: dict) -> bool:
    """The DSN carries no password and asyncpg takes PGUSER/PGPASSWORD from a Secret (CNPG roles)."""
    return ("DATABASE_URL" in plain and urlsplit(plain["DATABASE_URL"]).password is None
            and "PGPASSWORD" in refs and "PGUSER" in refs)


def test_environment_is_settings_the_service_reads(rendered):
    where, objects = rendered
    for service, kind, workload in workloads(objects):
        (container,) = workload["spec"]["template"]["spec"]["containers"]
        plain, refs = container_env(objects, container)
        split = database_login_is_split(plain, refs)
        unknown = (set(plain) | set(refs)) - env_names(service) - (LIBPQ_ENV if split else set())
        assert not unknown, f"{where}/{kind}/{service} is given variables its code does not read: {sorted(unknown)}"
        leaked = (secret_fields(service) & set(plain)) - ({"DATABASE_URL"} if split else set())
        assert not leaked, f"{where}/{kind}/{service}: secrets in a ConfigMap or literal: {sorted(leaked)}"
        required = required_secrets(service) if kind == "Deployment" else {s.upper() for s in MIGRATION_SECRETS}
        for secret in required:
            if secret == "DATABASE_URL" and split:
                continue
            assert secret in refs, f"{where}/{kind}/{service}: required secret {secret} has no secretKeyRef"
            assert not refs[secret].get("optional"), f"{where}/{kind}/{service}: {secret} must not be optional"


def test_no_secret_reaches_a_service_that_does_not_use_it(rendered):
    where, objects = rendered
    owners: dict[str, set[str]] = {}
    for service, kind, workload in workloads(objects):
        (container,) = workload["spec"]["template"]["spec"]["containers"]
        plain, refs = container_env(objects, container)
        used = secrets_used(service) if kind == "Deployment" else {s.upper() for s in MIGRATION_SECRETS}
        allowed = used | (LIBPQ_ENV if "DATABASE_URL" in used else set())
        assert set(refs) <= allowed, f"{where}/{kind}/{service} gets secrets its code never reads: {sorted(set(refs) - allowed)}"
        for ref in refs.values():
            owners.setdefault(ref["name"], set()).add(service)
        for volume in workload["spec"]["template"]["spec"]["volumes"]:
            if "secret" in volume:  # only CA certificates are mounted
                assert volume["secret"]["items"] == [{"key": "ca.crt", "path": "ca.crt"}], volume
    shared = {name: users for name, users in owners.items() if len(users) > 1}
    assert not shared, f"{where}: one Secret per service, these are shared: {shared}"
    intake = container_env(objects, deployments(objects)["intake"]["spec"]["template"]["spec"]["containers"][0])[1]
    assert not {"ADMIN_TOKEN", "SMTP_PASSWORD", "LINK_SIGNING_KEY"} & set(intake)
    for service, deployment in deployments(objects).items():
        plain, _ = container_env(objects, deployment["spec"]["template"]["spec"]["containers"][0])
        sends_mail = "SMTP_PASSWORD" in secrets_used(service)
        assert ("SMTP_HOST" in plain) == sends_mail, f"{where}/{service}: mail settings only where mail is sent"


def test_configuration_passes_the_settings_validation(rendered):
    """The ConfigMap values plus the (out-of-band or operator-made) secrets start each service in production."""
    where, objects = rendered
    for service, kind, workload in workloads(objects):
        (container,) = workload["spec"]["template"]["spec"]["containers"]
        plain, refs = container_env(objects, container)
        env = {**plain, **{key: secrets.token_hex(24) for key in refs if key not in LIBPQ_ENV}}
        if "DATABASE_URL" in refs:
            env["DATABASE_URL"] = f"postgresql://keymoment:{secrets.token_hex(8)}@db.example:5432/keymoment"
        assert env["KEYMOMENT_ENV"] == "production"
        if kind == "Job":
            from keymoment.serve import _service, migration_settings

            migration_settings(_service(service)[1])(**{k.lower(): v for k, v in env.items()})
            continue
        settings = build_settings(service, env)
        assert settings.host == "0.0.0.0"
        assert settings.migrate_on_start is False, "the migration Jobs migrate; replicas must not race them"
        mounts = [PurePosixPath(m["mountPath"]) for m in container["volumeMounts"]]
        for field in path_fields(service) & set(env):
            path = PurePosixPath(env[field])
            assert any(m in path.parents for m in mounts), f"{where}/{service}: {field}={path} is not mounted"
        if hasattr(settings, "routes_path"):
            settings.routes_path()


# --- Kafka ---------------------------------------------------------------------------------

STRIMZI_TARGETS = [t for t in TARGETS if "kafka-strimzi" in t]


@pytest.mark.parametrize("target", STRIMZI_TARGETS[:1] + STRIMZI_TARGETS[-1:])
def test_every_topic_the_code_uses_has_a_kafka_topic_and_a_dlq(target):
    objects = render(target)
    declared = {t["metadata"]["name"]: t["spec"] for t in kinds(objects, "KafkaTopic")}
    used = {n for t in service_topics().values() for n in (*t["produces"], *t["consumes"])}
    assert used and set(declared) == used | {f"{n}.dlq" for n in used}
    common = named(objects, "ConfigMap", "keymoment-common")["data"]
    dedupe_days = min(build_settings(s, {"keymoment_env": "test"}).processed_events_retention_days for s in SERVICES)
    for name, spec in declared.items():
        assert spec["replicas"] == 3 and spec["config"]["min.insync.replicas"] == 2, name
        retention_days = spec["config"]["retention.ms"] / 86_400_000
        assert 0 < retention_days <= 14 and retention_days < dedupe_days, f"{name}: retention {retention_days} d"
        assert spec["partitions"] == int(common["KAFKA_TOPIC_PARTITIONS"]), name
    assert int(common["KAFKA_REPLICATION_FACTOR"]) == 3
    (pool,) = kinds(objects, "KafkaNodePool")
    assert pool["spec"]["replicas"] >= 3 and set(pool["spec"]["roles"]) == {"controller", "broker"}


def acl_sets(user: dict) -> dict[str, set[str]]:
    out = {"write": set(), "read": set(), "group": set(), "describe": set()}
    for acl in user["spec"]["authorization"]["acls"]:
        resource, ops = acl["resource"], set(acl["operations"])
        assert resource["patternType"] == "literal" and acl.get("type", "allow") == "allow"
        assert ops <= {"Describe", "Read", "Write"}, f"{user['metadata']['name']}: {ops}"
        if resource["type"] == "group":
            out["group" if "Read" in ops else "describe"].add(resource["name"])
        elif "Write" in ops:
            out["write"].add(resource["name"])
        elif "Read" in ops:
            out["read"].add(resource["name"])
        else:
            out["describe"].add(resource["name"])
    return out


def test_each_service_may_write_only_what_it_produces_and_read_only_what_it_consumes():
    objects = render(STRIMZI_TARGETS[-1])
    users = {u["metadata"]["name"]: u for u in kinds(objects, "KafkaUser")}
    for service, topics in service_topics().items():
        user = users.pop(f"kafka-{service}")
        assert user["spec"]["authentication"]["type"] == "scram-sha-512"
        acls = acl_sets(user)
        assert acls["write"] == set(topics["produces"]) | {f"{c}.dlq" for c in topics["consumes"]}, service
        assert acls["read"] == set(topics["consumes"]), service
        assert acls["group"] == ({topics["group"]} if topics["consumes"] else set()), service
        (container,) = deployments(objects)[service]["spec"]["template"]["spec"]["containers"]
        plain, refs = container_env(objects, container)
        assert plain["KAFKA_SASL_USERNAME"] == user["metadata"]["name"]
        assert refs["KAFKA_SASL_PASSWORD"] == {"name": user["metadata"]["name"], "key": "password"}
        assert plain["KAFKA_SECURITY_PROTOCOL"] == "SASL_SSL" and plain["KAFKA_SASL_MECHANISM"] == "SCRAM-SHA-512"
    consumed = {c for t in service_topics().values() for c in t["consumes"]}
    dlq_operator = acl_sets(users.pop("kafka-dlq-operator"))  # `keymoment dlq`: reads dead letters, replays them
    assert dlq_operator["read"] == {f"{c}.dlq" for c in consumed} and dlq_operator["write"] == consumed
    assert not dlq_operator["group"]
    (lag_reader,) = users.values()  # KEDA's: describes topics and groups, reads nothing
    acls = acl_sets(lag_reader)
    assert not acls["write"] and not acls["read"] and not acls["group"]


# --- PostgreSQL ----------------------------------------------------------------------------

def test_each_service_logs_in_as_its_own_role_owning_its_schema():
    objects = render("overlays/production+postgres-cnpg")
    (cluster,) = kinds(objects, "Cluster")
    assert cluster["spec"]["instances"] == 3
    roles = {r["name"]: r["passwordSecret"]["name"] for r in cluster["spec"]["managed"]["roles"]}
    sql = cluster["spec"]["bootstrap"]["initdb"]["postInitApplicationSQL"]
    for service, kind, workload in workloads(objects):
        (container,) = workload["spec"]["template"]["spec"]["containers"]
        plain, refs = container_env(objects, container)
        schema = build_settings(service, {"keymoment_env": "test"}).schema
        assert f"CREATE SCHEMA {schema} AUTHORIZATION {service}" in sql
        assert roles[service] == refs["PGPASSWORD"]["name"] == refs["PGUSER"]["name"], f"{kind}/{service}"
        dsn = urlsplit(plain["DATABASE_URL"])
        assert dsn.hostname == f"{cluster['metadata']['name']}-rw" and "sslmode=verify-full" in dsn.query


# --- monitoring ----------------------------------------------------------------------------

def test_generated_files_are_current():
    for path, text in load_generator().files().items():
        assert path.read_text(encoding="utf-8") == text, (
            f"{path.relative_to(ROOT)} is stale: .venv/bin/python deploy/k8s/generate.py"
        )


def test_prometheus_rule_is_the_rules_prometheus_loads():
    (rule,) = kinds(render("overlays/production+monitoring"), "PrometheusRule")
    committed = yaml.safe_load((ROOT / "deploy/prometheus/rules/cx.yml").read_text(encoding="utf-8"))
    assert rule["spec"] == committed == rules.rule_groups()


def test_dashboards_are_the_grafana_files():
    objects = render("overlays/production+monitoring")
    boards = {k: v for c in kinds(objects, "ConfigMap") if c["metadata"].get("labels", {}).get("grafana_dashboard") == "1"
              for k, v in c["data"].items()}
    files = {p.name: p.read_text(encoding="utf-8") for p in (ROOT / "deploy/grafana/dashboards").glob("*.json")}
    assert boards == files and set(files) == set(dashboards.DASHBOARDS)
    (source,) = [c for c in kinds(objects, "ConfigMap") if c["metadata"].get("labels", {}).get("grafana_datasource") == "1"]
    (datasource,) = yaml.safe_load(next(iter(source["data"].values())))["datasources"]
    for board in files.values():
        assert {p["datasource"]["uid"] for p in json.loads(board)["panels"]} == {datasource["uid"]}


# --- production ----------------------------------------------------------------------------

def test_production_ingress_serves_only_public_routes_with_tls():
    objects = render("overlays/production")
    (ingress,) = kinds(objects, "Ingress")
    hosts = {rule["host"] for rule in ingress["spec"]["rules"]}
    assert hosts <= {h for tls in ingress["spec"]["tls"] for h in tls["hosts"]}, "every host is served over TLS"
    urls = {urlsplit(named(objects, "ConfigMap", "keymoment-survey")["data"]["SURVEY_PUBLIC_BASE_URL"]).hostname: "survey",
            urlsplit(named(objects, "ConfigMap", "keymoment-alerts")["data"]["PUBLIC_BASE_URL"]).hostname: "alerts"}
    routed: dict[str, set[str]] = {}
    for rule in ingress["spec"]["rules"]:
        for path in rule["http"]["paths"]:
            backend = path["backend"]["service"]
            assert backend["port"] == {"name": "http"}
            routed.setdefault(backend["name"], set()).add(path["path"])
            if rule["host"] in urls:
                assert urls[rule["host"]] == backend["name"], "the links in emails reach their service"
    assert routed == {"intake": {"/v1", "/kiosk"}, "survey": {"/s"}, "alerts": {"/l"}}, "no admin API, no /metrics"


def test_overlays_differ_in_size():
    dev, prod = render("overlays/dev"), render("overlays/production")
    for service in SERVICES:
        cpu = lambda objs: deployments(objs)[service]["spec"]["template"]["spec"]["containers"][0]["resources"]["requests"]["cpu"]  # noqa: E731
        millis = lambda v: int(v[:-1]) if v.endswith("m") else int(float(v) * 1000)  # noqa: E731
        assert millis(cpu(prod)) > millis(cpu(dev)), service
    assert not kinds(dev, "Ingress")
