"""deploy/k8s: every overlay renders offline, every object validates against
the Kubernetes OpenAPI schemas (strict: unknown fields are errors), and the
workloads agree with the services' code: settings they read, secrets they
require, ports and health endpoints."""

from __future__ import annotations

import secrets
import shutil
import subprocess
from pathlib import PurePosixPath

import kubernetes_validate
import pytest
import yaml

from tests.deploy.kustomize import build, index
from tests.deploy.support import (
    ROOT,
    SERVICES,
    build_settings,
    default_port,
    env_names,
    listening_ports,
    path_fields,
    required_secrets,
    secret_fields,
)

K8S = ROOT / "deploy" / "k8s"
OVERLAYS = sorted(p.name for p in (K8S / "overlays").iterdir() if (p / "kustomization.yaml").is_file())
# The oldest Kubernetes still commonly run and the newest the schemas bundle.
K8S_VERSIONS = ("1.30", kubernetes_validate.latest_version())


@pytest.fixture(scope="module", params=["base", *(f"overlays/{o}" for o in OVERLAYS)])
def rendered(request) -> tuple[str, list[dict]]:
    return request.param, build(K8S / request.param)


def kinds(objects: list[dict], kind: str) -> list[dict]:
    return [o for o in objects if o["kind"] == kind]


def deployments(objects: list[dict]) -> dict[str, dict]:
    """Deployments by the service they run (`keymoment serve SERVICE`)."""
    out = {}
    for deployment in kinds(objects, "Deployment"):
        (container,) = deployment["spec"]["template"]["spec"]["containers"]
        assert container["args"][0] == "serve", container["args"]
        out[container["args"][1]] = deployment
    return out


def named_port(container: dict, port: int | str) -> int:
    if isinstance(port, int):
        return port
    (match,) = [p["containerPort"] for p in container["ports"] if p["name"] == port]
    return match


def container_env(objects: list[dict], container: dict) -> tuple[dict[str, str], dict[str, dict]]:
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
            plain[item["name"]] = item["value"]
        else:
            refs[item["name"]] = item["valueFrom"]["secretKeyRef"]
    return plain, refs


def test_every_overlay_is_found():
    assert {"dev", "production"} <= set(OVERLAYS)


def test_rendering_validates_against_kubernetes_schemas(rendered):
    where, objects = rendered
    index(objects)  # no duplicates
    for obj in objects:
        for version in K8S_VERSIONS:
            try:
                kubernetes_validate.validate(obj, version, strict=True)
            except kubernetes_validate.ValidationError as exc:
                pytest.fail(f"{where}: {obj['kind']}/{obj['metadata']['name']} invalid for {version}: {exc.message}")


def test_the_schema_check_is_strict():
    """A misspelt field must fail, or the validation above proves nothing."""
    (deployment,) = [o for o in build(K8S / "base") if o["kind"] == "Deployment" and o["metadata"]["name"] == "survey"]
    deployment["spec"]["template"]["spec"]["containers"][0]["readinessProbes"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, K8S_VERSIONS[-1], strict=True)


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl not installed; the Python rendering is still checked")
@pytest.mark.parametrize("target", ["base", *(f"overlays/{o}" for o in OVERLAYS)])
def test_renderer_agrees_with_kubectl_kustomize(target):
    result = subprocess.run(
        ["kubectl", "kustomize", str(K8S / target)], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    expected = index([d for d in yaml.safe_load_all(result.stdout) if d])
    assert index(build(K8S / target)) == expected


def test_one_deployment_service_and_pdb_per_service(rendered):
    _, objects = rendered
    assert set(deployments(objects)) == set(SERVICES)
    for kind in ("Service", "PodDisruptionBudget"):
        assert {o["metadata"]["name"] for o in kinds(objects, kind)} == set(SERVICES)


def test_no_secret_is_committed(rendered):
    _, objects = rendered
    assert not kinds(objects, "Secret"), "secrets are created out of band (deploy/k8s/README.md)"


def test_overlays_set_namespace_and_a_pinned_image(rendered):
    where, objects = rendered
    if where == "base":
        return
    for obj in objects:
        assert obj["metadata"].get("namespace"), f"{where}: {obj['kind']}/{obj['metadata']['name']} has no namespace"
    for deployment in kinds(objects, "Deployment"):
        image = deployment["spec"]["template"]["spec"]["containers"][0]["image"]
        tag = image.rsplit(":", 1)[-1] if ":" in image.rsplit("/", 1)[-1] else ""
        assert ("@sha256:" in image) or (tag and tag != "latest"), f"{where}: unpinned image {image}"


def test_workloads_are_hardened(rendered):
    where, objects = rendered
    for service, deployment in deployments(objects).items():
        pod = deployment["spec"]["template"]["spec"]
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
        for kind in ("requests", "limits"):
            assert {"cpu", "memory"} <= set(container["resources"][kind]), f"{where}/{service}: {kind}"
        mounts = {m["mountPath"] for m in container["volumeMounts"]}
        assert "/tmp" in mounts, f"{where}/{service}: read-only root needs a writable /tmp"


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


def test_selectors_select_the_pods(rendered):
    _, objects = rendered
    pods = {name: d["spec"]["template"]["metadata"]["labels"] for name, d in deployments(objects).items()}

    def selected(match_labels: dict) -> set[str]:
        return {name for name, labels in pods.items() if match_labels.items() <= labels.items()}

    for deployment in kinds(objects, "Deployment"):
        assert deployment["spec"]["selector"]["matchLabels"].items() <= deployment["spec"]["template"]["metadata"]["labels"].items()
    for kind in ("Service", "PodDisruptionBudget"):
        for obj in kinds(objects, kind):
            selector = obj["spec"]["selector"] if kind == "Service" else obj["spec"]["selector"]["matchLabels"]
            assert selected(selector) == {obj["metadata"]["name"]}, f"{kind}/{obj['metadata']['name']}"
    for policy in kinds(objects, "NetworkPolicy"):
        assert selected(policy["spec"]["podSelector"]["matchLabels"]) == set(SERVICES)
        allowed = {port["port"] for rule in policy["spec"]["ingress"] for port in rule["ports"]}
        for name, deployment in deployments(objects).items():
            (container,) = deployment["spec"]["template"]["spec"]["containers"]
            # Every port a pod listens on is let in, by name, and nothing else is named.
            assert {p["name"] for p in container["ports"]} <= allowed, f"{name}: a listening port is blocked"


def test_autoscaled_deployments_leave_replicas_to_the_hpa(rendered):
    _, objects = rendered
    by_name = {d["metadata"]["name"]: d for d in kinds(objects, "Deployment")}
    hpas = kinds(objects, "HorizontalPodAutoscaler")
    assert {h["spec"]["scaleTargetRef"]["name"] for h in hpas} == {"intake"}
    for hpa in hpas:
        target = by_name[hpa["spec"]["scaleTargetRef"]["name"]]
        assert "replicas" not in target["spec"], "a fixed replica count fights the autoscaler on every apply"
        assert 1 <= hpa["spec"]["minReplicas"] <= hpa["spec"]["maxReplicas"]


def test_environment_is_settings_the_service_reads(rendered):
    where, objects = rendered
    for name, deployment in deployments(objects).items():
        (container,) = deployment["spec"]["template"]["spec"]["containers"]
        plain, refs = container_env(objects, container)
        unknown = (set(plain) | set(refs)) - env_names(name)
        assert not unknown, f"{where}/{name} is given variables its settings do not read: {sorted(unknown)}"
        leaked = secret_fields(name) & set(plain)
        assert not leaked, f"{where}/{name}: secrets in a ConfigMap or literal: {sorted(leaked)}"
        for secret in required_secrets(name):
            assert secret in refs, f"{where}/{name}: required secret {secret} has no secretKeyRef"
            assert not refs[secret].get("optional"), f"{where}/{name}: {secret} must not be optional"


def test_configuration_passes_the_settings_validation(rendered):
    """The ConfigMap values plus the (out-of-band) secrets start each service in production."""
    where, objects = rendered
    for name, deployment in deployments(objects).items():
        pod = deployment["spec"]["template"]["spec"]
        (container,) = pod["containers"]
        plain, refs = container_env(objects, container)
        env = {**plain, **{key: secrets.token_hex(24) for key in refs}}
        env["DATABASE_URL"] = f"postgresql://keymoment:{secrets.token_hex(8)}@db.example:5432/keymoment"
        assert env["KEYMOMENT_ENV"] == "production"
        settings = build_settings(name, env)
        assert settings.host == "0.0.0.0"
        mounts = [PurePosixPath(m["mountPath"]) for m in container["volumeMounts"]]
        for field in path_fields(name) & set(env):
            path = PurePosixPath(env[field])
            assert any(m in path.parents for m in mounts), f"{where}/{name}: {field}={path} is not mounted"
        if hasattr(settings, "routes_path"):
            settings.routes_path()
