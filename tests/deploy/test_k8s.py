"""deploy/k8s: the manifests parse, hold the kinds deploy/README.md lists, refer to each other
correctly, and give every container resources, a non-root user and the released image."""

from __future__ import annotations

import re
from typing import Any

from tests.deploy.deployment import (
    DEPLOY_README,
    WORKLOADS,
    final_stage,
    k8s_containers,
    k8s_documents,
    k8s_objects,
    load_settings_of,
    pod_spec,
    project_version,
    resolve,
)

ROW = re.compile(r"^\|\s*`(k8s/[^`]+\.ya?ml)`\s*\|\s*([A-Za-z, ]+?)\s*\|\s*$")


def promised_kinds() -> dict[str, list[str]]:
    """The README's ``| `k8s/FILE` | Kind, Kind |`` rows."""
    rows = {}
    for line in DEPLOY_README.read_text().splitlines():
        match = ROW.match(line)
        if match:
            rows[match[1]] = sorted(kind.strip() for kind in match[2].split(","))
    return rows


def test_manifests_hold_the_kinds_the_readme_lists() -> None:
    documents = k8s_documents()
    assert documents, "deploy/k8s holds no manifest"
    found = {
        f"k8s/{path.name}": sorted(str(doc["kind"]) for doc in docs)
        for path, docs in documents.items()
    }
    for path, docs in documents.items():
        for doc in docs:
            assert doc.get("apiVersion"), f"{path.name}: a document without apiVersion"
            assert doc.get("metadata", {}).get("name"), f"{path.name}: a document without a name"
    assert found == promised_kinds()
    kinds = {kind for kinds in found.values() for kind in kinds}
    assert {"ConfigMap", "Job", "StatefulSet", "Deployment", "Service"} <= kinds


def _labels_match(selector: dict[str, Any], labels: dict[str, Any]) -> bool:
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def test_references_between_manifests_resolve() -> None:
    objects = k8s_objects()
    services = {o["metadata"]["name"]: o for o in objects if o["kind"] == "Service"}
    workloads = [o for o in objects if o["kind"] in WORKLOADS]
    problems = []
    for obj in workloads:
        name, labels = obj["metadata"]["name"], pod_spec(obj)["metadata"]["labels"]
        selector = obj["spec"].get("selector", {}).get("matchLabels", {})
        if obj["kind"] != "Job" and not _labels_match(selector, labels):
            problems.append(f"{obj['kind']} {name}: its selector misses its pods")
        if obj["kind"] == "StatefulSet":
            governing = services.get(obj["spec"].get("serviceName", ""))
            if governing is None or governing["spec"].get("clusterIP") != "None":
                problems.append(
                    f"StatefulSet {name}: no headless Service {obj['spec'].get('serviceName')}"
                )
    for name, service in services.items():
        pods = [
            pod_spec(w)
            for w in workloads
            if _labels_match(service["spec"]["selector"], pod_spec(w)["metadata"]["labels"])
        ]
        if not pods:
            problems.append(f"Service {name}: selects no pods")
        ports = {
            p.get("name")
            for pod in pods
            for c in pod["spec"]["containers"]
            for p in c.get("ports", [])
        }
        for port in service["spec"].get("ports", []):
            target = port.get("targetPort", port["port"])
            if isinstance(target, str) and target not in ports:
                problems.append(f"Service {name}: targetPort {target} is no container port")
    assert not problems, "\n".join(problems)


def test_the_readme_creates_the_secrets_the_containers_read() -> None:
    readme = DEPLOY_README.read_text()
    refs = {
        (item["valueFrom"]["secretKeyRef"]["name"], item["valueFrom"]["secretKeyRef"]["key"])
        for c in k8s_containers()
        for item in c.raw.get("env", [])
        if "secretKeyRef" in item.get("valueFrom", {})
    }
    assert refs, "no container reads a Secret"
    for name, key in sorted(refs):
        assert f"kubectl create secret generic {name}" in readme, name
        assert f"--from-literal={key}=" in readme, f"deploy/README.md never sets {key} in {name}"


def test_containers_have_resources_and_run_as_the_image_user() -> None:
    users = [rest for keyword, rest in final_stage() if keyword == "USER"]
    assert users, "deploy/Dockerfile sets no USER"
    uid = int(users[-1].split(":")[0])
    problems = []
    for obj in k8s_objects():
        if obj["kind"] not in WORKLOADS:
            continue
        spec = pod_spec(obj)["spec"]
        context = spec.get("securityContext", {})
        if context.get("runAsNonRoot") is not True or context.get("runAsUser") != uid:
            problems.append(f"{obj['metadata']['name']}: not runAsNonRoot as uid {uid}")
        for container in spec["containers"]:
            resources = container.get("resources", {})
            for need in ("requests.cpu", "requests.memory", "limits.memory"):
                group, _, what = need.partition(".")
                if what not in resources.get(group, {}):
                    problems.append(f"{obj['metadata']['name']}/{container['name']}: no {need}")
            if container["image"] != f"touchstream:{project_version()}":
                problems.append(f"{container['name']}: image {container['image']}")
    assert not problems, "\n".join(problems)


def test_workers_are_no_more_than_partitions() -> None:
    sets = [o for o in k8s_objects() if o["kind"] == "StatefulSet"]
    workers = [c for c in k8s_containers() if resolve(c.argv).path == ("worker",)]
    assert len(sets) == 1, "one StatefulSet runs the workers"
    assert len(workers) == 1, "one container runs `touchstream worker`"
    partitions = load_settings_of(workers[0]).partitions
    assert 1 <= sets[0]["spec"]["replicas"] <= partitions
