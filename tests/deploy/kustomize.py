"""A small, offline kustomize renderer for the features deploy/k8s uses.

``kubectl`` is not part of the Python toolchain ``make test`` installs, so the
tests render the overlays themselves. Only these kustomization fields are
understood: ``resources`` (files and directories), ``components`` (``kind:
Component`` directories with ``resources`` and ``patches``, applied in order
after the resources and before the other fields, as kustomize does),
``namespace``, ``labels`` (metadata labels only), ``images``, ``replicas`` and
``patches`` given by ``path`` (strategic-merge patches that name their target
by kind and name). Anything else raises :class:`Unsupported`, so a kustomization that
grows a new feature fails loudly here instead of being rendered wrongly.
Where ``kubectl`` is installed, a test checks this rendering against
``kubectl kustomize`` object by object.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

SUPPORTED = {"apiVersion", "kind", "resources", "components", "namespace", "labels", "images", "replicas", "patches"}
COMPONENT_FIELDS = {"apiVersion", "kind", "resources", "patches"}
CLUSTER_SCOPED = {
    "Namespace", "ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition", "PersistentVolume",
    "StorageClass", "PriorityClass", "IngressClass", "ValidatingWebhookConfiguration",
    "MutatingWebhookConfiguration",
}
WORKLOADS = {"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job"}
SCALABLE = {"Deployment", "StatefulSet", "ReplicaSet"}
# Strategic-merge keys of the lists the patches may touch (Kubernetes' patchMergeKey).
MERGE_KEYS = {
    "containers": "name",
    "initContainers": "name",
    "env": "name",
    "volumes": "name",
    "volumeMounts": "mountPath",
    "ports": "containerPort",
}


class Unsupported(ValueError):
    """The kustomization uses a feature this renderer does not implement."""


def load(directory: Path) -> dict[str, Any]:
    return yaml.safe_load((Path(directory) / "kustomization.yaml").read_text(encoding="utf-8"))


def build(directory: Path, kustomization: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """Render ``directory``'s kustomization (or ``kustomization``, its paths relative to ``directory``)."""
    directory = Path(directory)
    kustomization = kustomization if kustomization is not None else load(directory)
    if kustomization.get("kind", "Kustomization") != "Kustomization":
        raise Unsupported(f"{directory}: a {kustomization['kind']} is not built on its own")
    unknown = set(kustomization) - SUPPORTED
    if unknown:
        raise Unsupported(f"{directory}: kustomization fields not supported by the test renderer: {sorted(unknown)}")

    objects = _resources(directory, kustomization)
    for entry in kustomization.get("components", []):
        component_dir = (directory / entry).resolve()
        component = load(component_dir)
        if component.get("kind") != "Component" or set(component) - COMPONENT_FIELDS:
            raise Unsupported(f"{component_dir}: expected a kind: Component with {sorted(COMPONENT_FIELDS)}")
        objects += _resources(component_dir, component)
        _patches(objects, component_dir, component)
    _patches(objects, directory, kustomization)

    if namespace := kustomization.get("namespace"):
        for obj in objects:
            if obj["kind"] not in CLUSTER_SCOPED:
                obj.setdefault("metadata", {})["namespace"] = namespace

    for label in kustomization.get("labels", []):
        if label.get("includeSelectors") or label.get("includeTemplates"):
            raise Unsupported(f"{directory}: labels with includeSelectors/includeTemplates")
        for obj in objects:
            obj.setdefault("metadata", {}).setdefault("labels", {}).update(label["pairs"])

    for image in kustomization.get("images", []):
        for obj in objects:
            for container in _containers(obj):
                container["image"] = _retag(container["image"], image)

    for replicas in kustomization.get("replicas", []):
        matched = [o for o in objects if o["kind"] in SCALABLE and o["metadata"]["name"] == replicas["name"]]
        if not matched:
            raise ValueError(f"{directory}: replicas for unknown workload {replicas['name']!r}")
        for obj in matched:
            obj["spec"]["replicas"] = int(replicas["count"])
    return objects


def _resources(directory: Path, kustomization: dict[str, Any]) -> list[dict[str, Any]]:
    objects: list[dict[str, Any]] = []
    for entry in kustomization.get("resources", []):
        path = (directory / entry).resolve()
        if path.is_dir():
            objects += build(path)
        else:
            objects += [doc for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc]
    return objects


def _patches(objects: list[dict[str, Any]], directory: Path, kustomization: dict[str, Any]) -> None:
    for patch in kustomization.get("patches", []):
        if set(patch) != {"path"}:
            raise Unsupported(f"{directory}: only `patches: - path: FILE` is supported, got {patch}")
        for doc in yaml.safe_load_all((directory / patch["path"]).read_text(encoding="utf-8")):
            if doc:
                _apply_patch(objects, doc, where=f"{directory}/{patch['path']}")


def _apply_patch(objects: list[dict[str, Any]], patch: dict[str, Any], *, where: str) -> None:
    kind, name = patch["kind"], patch["metadata"]["name"]
    targets = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]
    if len(targets) != 1:
        raise ValueError(f"{where}: patch target {kind}/{name} matched {len(targets)} objects")
    body = {k: v for k, v in patch.items() if k not in ("apiVersion", "kind")}
    body["metadata"] = {k: v for k, v in patch["metadata"].items() if k != "name"}
    merged = strategic_merge(targets[0], body)
    targets[0].clear()
    targets[0].update(merged)


def strategic_merge(base: Any, patch: Any, field: str | None = None) -> Any:
    """Strategic merge of the simple kind: maps merge, keyed lists merge by key, other lists replace."""
    if isinstance(base, dict) and isinstance(patch, dict):
        out = copy.deepcopy(base)
        for key, value in patch.items():
            if value is None:
                out.pop(key, None)
            elif key in out:
                out[key] = strategic_merge(out[key], value, key)
            else:
                out[key] = copy.deepcopy(value)
        return out
    if isinstance(base, list) and isinstance(patch, list) and field in MERGE_KEYS:
        key = MERGE_KEYS[field]
        out = copy.deepcopy(base)
        for item in patch:
            match = next((i for i, b in enumerate(out) if b.get(key) == item.get(key)), None)
            if match is None:
                out.append(copy.deepcopy(item))
            else:
                out[match] = strategic_merge(out[match], item)
        return out
    return copy.deepcopy(patch)


def _containers(obj: dict[str, Any]) -> list[dict[str, Any]]:
    if obj["kind"] not in WORKLOADS:
        return []
    pod = obj["spec"]["template"]["spec"]
    return [*pod.get("initContainers", []), *pod.get("containers", [])]


def _retag(reference: str, image: dict[str, str]) -> str:
    name, tag, digest = reference, None, None
    if "@" in name:
        name, digest = name.split("@", 1)
    elif ":" in name.rsplit("/", 1)[-1]:
        name, tag = name.rsplit(":", 1)
    if name != image["name"]:
        return reference
    name = image.get("newName", name)
    if "digest" in image:
        return f"{name}@{image['digest']}"
    tag = image.get("newTag", tag)
    if tag:
        return f"{name}:{tag}"
    return f"{name}@{digest}" if digest else name


def index(objects: list[dict[str, Any]]) -> dict[tuple[str, str | None, str], dict[str, Any]]:
    """Objects by (kind, namespace, name); duplicates are an error, as in kustomize."""
    out: dict[tuple[str, str | None, str], dict[str, Any]] = {}
    for obj in objects:
        key = (obj["kind"], obj["metadata"].get("namespace"), obj["metadata"]["name"])
        if key in out:
            raise ValueError(f"duplicate object {key}")
        out[key] = obj
    return out
