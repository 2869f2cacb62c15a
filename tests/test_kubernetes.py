"""The Kubernetes manifests in deploy/kubernetes/, checked without a cluster.

Core objects are validated against the Kubernetes JSON schemas (strict) that kubernetes-validate
ships, and KEDA's objects against a schema built from cloudcoil-models-keda's models of KEDA's
CRDs (see tests/support/k8s_schemas.py). Then the manifests are checked against what the code
really has: the `moderation` commands, the settings' environment variables (the durability
ones from the ConfigMap), the operator endpoints, the Dockerfile's user, the job timeouts, and
the Redis list RQ keeps the scoring queue in (which KEDA watches).

The Sentinel example in deploy/kubernetes/redis-sentinel/ is validated the same way, and its
pieces against each other (Services, StatefulSets, the topology its scripts assume, the quorum,
the REDIS_URL the Secret template shows). Its init scripts run here against a stand-in
`valkey-cli` that plays the Sentinels and Redis pods, and the configurations they write are
loaded by a real Valkey 9 server and Sentinel.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import click
import pytest
import redis
import yaml
from flask.testing import FlaskClient
from rq.job import Job

from moderation.core.redis_connections import parse_sentinel_url
from moderation.core.settings import (
    DURABILITY_MODES,
    ENVIRONMENT_VARIABLES,
    Settings,
    SettingsError,
    from_env,
)
from moderation.ops.server import GunicornApp
from moderation.storage.job_queues import SCORING_QUEUE, DeliveryEnqueuer, scoring_queue
from tests.support.cli_commands import resolve
from tests.support.k8s_schemas import KEDA_KINDS, keda_validator, kubernetes_errors
from tests.support.processes import wait_for
from tests.support.redis_images import image_has_waitaof
from tests.support.redis_server import free_port, valkey_server

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy" / "kubernetes"
SENTINEL_EXAMPLE = DEPLOY / "redis-sentinel"
SECRET_TEMPLATE = "secret.example.yaml"
KUSTOMIZATION = "kustomization.yaml"
NAMESPACE = "moderation"

# The oldest Kubernetes minor release the manifests promise to work on, and the newest whose
# schemas kubernetes-validate ships.
KUBERNETES_VERSIONS = ("1.29", "1.37")

API, WORKER, WEBHOOKS = "moderation-api", "moderation-worker", "moderation-webhooks"
COMMANDS = {
    API: ["moderation", "serve"],
    WORKER: ["moderation", "worker"],
    WEBHOOKS: ["moderation", "worker", "--deliveries"],
}

# Variables the manifests may set that are not the service's own settings.
STANDARD_VARIABLES = frozenset({"OMP_NUM_THREADS"})
# Secret keys that only KEDA reads (its redis scaler wants host:port and a password).
KEDA_SECRET_KEYS = frozenset({"REDIS_ADDRESS", "REDIS_PASSWORD"})
CLUSTER_SCOPED = frozenset({"Namespace"})

# The bert-base sizing the README explains: 1 core per one-thread worker process, a request
# above the measured working set (~0.9 GiB) and a limit with room for the peaks.
WORKER_MIN_MEMORY_REQUEST = 1.5 * 2**30
WORKER_MIN_MEMORY_LIMIT = 2.5 * 2**30


# --- reading the manifests -----------------------------------------------------------------------


@dataclass(frozen=True)
class Manifest:
    file: str
    document: dict[str, Any]

    @property
    def kind(self) -> str:
        return self.document["kind"]

    @property
    def name(self) -> str:
        return self.document["metadata"]["name"]


def manifest_files(directory: Path = DEPLOY) -> list[Path]:
    return sorted(path for path in directory.glob("*.yaml") if path.name != KUSTOMIZATION)


def load_manifests(directory: Path = DEPLOY) -> list[Manifest]:
    """The objects of the directory's files, each named by its path under deploy/kubernetes/."""
    return [
        Manifest(str(path.relative_to(DEPLOY)), document)
        for path in manifest_files(directory)
        for document in yaml.safe_load_all(path.read_text())
        if document is not None
    ]


MANIFESTS = load_manifests()
SENTINEL_MANIFESTS = load_manifests(SENTINEL_EXAMPLE)


def ids(manifest: Manifest) -> str:
    return f"{manifest.file}:{manifest.kind}/{manifest.name}"


def one(kind: str, name: str | None = None) -> dict[str, Any]:
    found = [m.document for m in MANIFESTS if m.kind == kind and name in (None, m.name)]
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
    return found[0]


def deployments() -> dict[str, dict[str, Any]]:
    return {m.name: m.document for m in MANIFESTS if m.kind == "Deployment"}


def pod_spec(deployment: dict[str, Any]) -> dict[str, Any]:
    return deployment["spec"]["template"]["spec"]


def only_container(deployment: dict[str, Any]) -> dict[str, Any]:
    (container,) = pod_spec(deployment)["containers"]
    return container


def plain_env(container: dict[str, Any]) -> dict[str, str]:
    return {item["name"]: item["value"] for item in container.get("env", []) if "value" in item}


def secret_refs(container: dict[str, Any]) -> dict[str, tuple[str, str]]:
    """env name -> (Secret name, key) for every variable taken from a Secret."""
    refs = {}
    for item in container.get("env", []):
        ref = item.get("valueFrom", {}).get("secretKeyRef")
        if ref:
            refs[item["name"]] = (ref["name"], ref["key"])
    return refs


def secret_template() -> dict[str, Any]:
    return one("Secret")


def secret_values() -> dict[str, str]:
    return dict(secret_template()["stringData"])


def config_refs(container: dict[str, Any]) -> dict[str, tuple[str, str]]:
    """env name -> (ConfigMap name, key) for every variable taken from a ConfigMap."""
    refs = {}
    for item in container.get("env", []):
        ref = item.get("valueFrom", {}).get("configMapKeyRef")
        if ref:
            assert not ref.get("optional"), f"{item['name']}: a missing key must stop the pod"
            refs[item["name"]] = (ref["name"], ref["key"])
    return refs


def config_values(container: dict[str, Any]) -> dict[str, str]:
    """The values the container's ConfigMap references resolve to (each must exist)."""
    values = {}
    for variable, (name, key) in config_refs(container).items():
        data = one("ConfigMap", name)["data"]
        assert key in data, f"{variable}: ConfigMap {name} has no key {key}"
        values[variable] = data[key]
    return values


def settings_env(container: dict[str, Any]) -> dict[str, str]:
    """The container's variables that are not secrets: literal values and ConfigMap ones."""
    return {**plain_env(container), **config_values(container)}


_UNITS = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "k": 10**3, "M": 10**6, "G": 10**9}


def quantity(raw: str | int | float) -> float:
    """A Kubernetes quantity ("250m", "1", "1536Mi", "2G") as a number (cores or bytes)."""
    text = str(raw)
    match = re.fullmatch(r"(\d+(?:\.\d+)?)(m|Ki|Mi|Gi|Ti|k|M|G)?", text)
    assert match, f"unsupported quantity {text!r}"
    number, unit = float(match.group(1)), match.group(2)
    if unit == "m":
        return number / 1000
    return number * _UNITS.get(unit or "", 1)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [  # worked out by hand from Kubernetes' quantity notation
        ("250m", 0.25),
        ("1", 1),
        (2, 2),
        ("1.5", 1.5),
        ("100k", 100_000),
        ("2G", 2_000_000_000),
        ("512Ki", 524_288),
        ("1536Mi", 1_610_612_736),
        ("2Gi", 2_147_483_648),
    ],
)
def test_quantities_are_read_as_kubernetes_reads_them(raw: str | int, expected: float) -> None:
    assert quantity(raw) == expected


# --- the files -----------------------------------------------------------------------------------


def test_every_manifest_parses_into_named_objects() -> None:
    assert {m.file for m in MANIFESTS} == {p.name for p in manifest_files()}, "no empty files"
    seen = set()
    for manifest in MANIFESTS:
        document = manifest.document
        assert document.get("apiVersion") and document.get("kind"), ids(manifest)
        assert document["metadata"].get("name"), ids(manifest)
        key = (document["apiVersion"], manifest.kind, manifest.name)
        assert key not in seen, f"{key} defined twice"
        seen.add(key)


def test_expected_objects_are_there() -> None:
    kinds = {(m.kind, m.name) for m in MANIFESTS}
    assert {
        ("Namespace", NAMESPACE),
        ("Secret", "moderation"),
        ("ConfigMap", "moderation"),
        ("Deployment", API),
        ("Service", API),
        ("Deployment", WORKER),
        ("Deployment", WEBHOOKS),
        ("ScaledObject", WORKER),
        ("TriggerAuthentication", "moderation-redis"),
    } <= kinds


def test_kustomization_lists_every_manifest_but_the_secret_template() -> None:
    kustomization = yaml.safe_load((DEPLOY / KUSTOMIZATION).read_text())
    assert kustomization["apiVersion"] == "kustomize.config.k8s.io/v1beta1"
    assert kustomization["kind"] == "Kustomization"
    assert set(kustomization) <= {"apiVersion", "kind", "resources", "images", "labels"}
    resources = kustomization["resources"]
    assert len(resources) == len(set(resources)), "listed twice"
    expected = {p.name for p in manifest_files()} - {SECRET_TEMPLATE}
    assert set(resources) == expected
    # `kubectl apply -k` must never replace a real Secret with the placeholders.
    assert SECRET_TEMPLATE not in resources
    images = {image["name"] for image in kustomization.get("images", [])}
    used = {c["image"].split(":")[0] for d in deployments().values() for c in containers(d)}
    assert images == used, "the images entry names the image every Deployment uses"


def containers(deployment: dict[str, Any]) -> list[dict[str, Any]]:
    spec = pod_spec(deployment)
    return [*spec.get("initContainers", []), *spec["containers"]]


def test_every_namespaced_object_is_in_the_namespace() -> None:
    assert one("Namespace")["metadata"]["name"] == NAMESPACE
    for manifest in MANIFESTS + SENTINEL_MANIFESTS:
        namespace = manifest.document["metadata"].get("namespace")
        if manifest.kind in CLUSTER_SCOPED:
            assert namespace is None, ids(manifest)
        else:
            assert namespace == NAMESPACE, ids(manifest)


# --- schemas -------------------------------------------------------------------------------------


CORE = [
    m for m in MANIFESTS + SENTINEL_MANIFESTS if not m.document["apiVersion"].startswith("keda.sh/")
]
KEDA = [m for m in MANIFESTS if m.document["apiVersion"].startswith("keda.sh/")]


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("manifest", CORE, ids=ids)
def test_core_objects_follow_the_kubernetes_schema(manifest: Manifest, version: str) -> None:
    problems = kubernetes_errors(manifest.document, version)
    assert not problems, "\n".join(problems)


def test_kubernetes_schema_catches_mistakes() -> None:
    """The strict schema is worth running: a misspelt field or a wrongly typed value fails."""
    api = one("Deployment", API)
    misspelt = {**only_container(api), "comand": ["moderation", "serve"]}
    broken = {
        **api,
        "spec": {
            **api["spec"],
            "template": {**api["spec"]["template"], "spec": {"containers": [misspelt]}},
        },
    }
    assert kubernetes_errors(broken, KUBERNETES_VERSIONS[-1])
    service = one("Service", API)
    port = {**service["spec"]["ports"][0], "port": "80"}
    assert kubernetes_errors({**service, "spec": {**service["spec"], "ports": [port]}}, "1.37")


@pytest.mark.parametrize("manifest", KEDA, ids=ids)
def test_keda_objects_follow_the_keda_crds(manifest: Manifest) -> None:
    assert manifest.document["apiVersion"] == "keda.sh/v1alpha1"
    assert manifest.kind in KEDA_KINDS
    problems = keda_validator(manifest.kind)(manifest.document)
    assert not problems, "\n".join(problems)


def test_keda_schema_catches_mistakes() -> None:
    scaled = one("ScaledObject")
    validate = keda_validator("ScaledObject")
    assert validate({**scaled, "spec": {**scaled["spec"], "minReplicas": 1}})
    trigger = scaled["spec"]["triggers"][0]
    numeric = {**trigger, "metadata": {**trigger["metadata"], "listLength": 30}}
    assert validate({**scaled, "spec": {**scaled["spec"], "triggers": [numeric]}}), (
        "KEDA trigger metadata values are strings"
    )


# --- selectors, ports and probes -----------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_deployment_selects_its_own_pods_only(name: str) -> None:
    deployment = deployments()[name]
    selector = deployment["spec"]["selector"]["matchLabels"]
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert selector.items() <= labels.items()
    for other_name, other in deployments().items():
        if other_name != name:
            other_labels = other["spec"]["template"]["metadata"]["labels"]
            assert not selector.items() <= other_labels.items(), f"{name} selects {other_name}"


def selected_by(selector: dict[str, str]) -> set[str]:
    return {
        name
        for name, deployment in deployments().items()
        if selector.items() <= deployment["spec"]["template"]["metadata"]["labels"].items()
    }


def test_service_sends_port_80_to_the_api_pods_on_8000() -> None:
    service = one("Service", API)
    assert service["spec"]["type"] == "ClusterIP"
    assert selected_by(service["spec"]["selector"]) == {API}
    (port,) = service["spec"]["ports"]
    assert port["port"] == 80
    container_ports = {
        p["name"]: p["containerPort"] for p in only_container(one("Deployment", API))["ports"]
    }
    target = port["targetPort"]
    assert container_ports.get(target, target) == 8000


def test_disruption_budget_covers_the_api() -> None:
    budget = one("PodDisruptionBudget")
    assert selected_by(budget["spec"]["selector"]["matchLabels"]) == {API}
    assert budget["spec"]["minAvailable"] < one("Deployment", API)["spec"]["replicas"]


def probe_port(container: dict[str, Any], probe: dict[str, Any]) -> int:
    port = probe["httpGet"]["port"]
    named = {p["name"]: p["containerPort"] for p in container["ports"]}
    return named[port] if isinstance(port, str) else port


def test_api_probes_use_the_operator_endpoints(client: FlaskClient) -> None:
    container = only_container(one("Deployment", API))
    listen = int(plain_env(container)["PORT"])
    assert [p["containerPort"] for p in container["ports"]] == [listen]
    liveness, readiness = container["livenessProbe"], container["readinessProbe"]
    assert liveness["httpGet"]["path"] == "/healthz"
    assert readiness["httpGet"]["path"] == "/readyz"
    assert probe_port(container, liveness) == probe_port(container, readiness) == listen
    # The endpoints exist and answer as the probes expect (no worker runs here: /readyz 503).
    assert client.get("/healthz").status_code == 200
    assert client.get("/readyz").status_code == 503


@pytest.mark.parametrize("name", [WORKER, WEBHOOKS])
def test_workers_serve_nothing(name: str) -> None:
    container = only_container(deployments()[name])
    assert "ports" not in container
    assert not {"livenessProbe", "readinessProbe", "startupProbe"} & set(container)


# --- the manifests against the code --------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_command_exists_in_the_cli(name: str) -> None:
    container = only_container(deployments()[name])
    assert "args" not in container
    assert container["command"] == COMMANDS[name]
    resolve(container["command"][1:])


def test_resolve_refuses_unknown_commands() -> None:
    with pytest.raises(AssertionError):
        resolve(["serv"])
    with pytest.raises(click.UsageError):
        resolve(["worker", "--delivery"])


def test_every_environment_variable_is_a_known_one() -> None:
    known = set(ENVIRONMENT_VARIABLES) | STANDARD_VARIABLES
    for name, deployment in deployments().items():
        for container in containers(deployment):
            assert "envFrom" not in container, "explicit variables only, so they can be checked"
            names = [item["name"] for item in container.get("env", [])]
            assert len(names) == len(set(names)), name
            assert set(names) - known == set(), name


def test_variables_mentioned_in_comments_and_readme_exist() -> None:
    text = "".join(path.read_text() for path in DEPLOY.rglob("*") if path.is_file())
    mentioned = set(re.findall(r"\bMODERATION_[A-Z0-9_]+", text))
    assert mentioned - set(ENVIRONMENT_VARIABLES) == set()


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_secrets_come_from_the_secret(name: str) -> None:
    container = only_container(deployments()[name])
    refs = secret_refs(container)
    assert set(refs) == {"REDIS_URL", "MODERATION_SECRET_KEY"}
    template = secret_template()
    for variable, (secret, key) in refs.items():
        assert secret == template["metadata"]["name"]
        assert key == variable and key in template["stringData"]


def test_secret_template_has_only_placeholders_that_the_service_refuses() -> None:
    values = secret_values()
    assert set(values) == {"MODERATION_SECRET_KEY", "REDIS_URL"} | KEDA_SECRET_KEYS
    assert all("CHANGE-ME" in value for key, value in values.items() if key != "REDIS_ADDRESS")
    # Applied unchanged, the template stops the service at start instead of running it with
    # a published secret key.
    with pytest.raises(SettingsError) as refused:
        from_env({"MODERATION_SECRET_KEY": values["MODERATION_SECRET_KEY"]})
    assert refused.value.variable == "MODERATION_SECRET_KEY"
    assert from_env({"REDIS_URL": values["REDIS_URL"]}).redis_url == values["REDIS_URL"]


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_environment_is_valid_settings(name: str) -> None:
    container = only_container(deployments()[name])
    env = {**settings_env(container), "MODERATION_SECRET_KEY": "x" * 48}
    env["REDIS_URL"] = secret_values()["REDIS_URL"]
    settings = from_env(env)
    assert settings.durability == "disk"
    if name == API:
        assert (settings.host, settings.port) == ("0.0.0.0", 8000)
        assert settings.web_concurrency >= 1


DURABILITY_VARIABLES = (
    "MODERATION_DURABILITY",
    "MODERATION_DURABILITY_TIMEOUT",
    "MODERATION_DURABILITY_REPLICAS",
)


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_role_takes_the_durability_settings_from_the_one_config_map(name: str) -> None:
    """One edit of config.yaml changes the promise for the API and both kinds of worker alike:
    a worker with a weaker setting would confirm decisions the API promised to keep."""
    container = only_container(deployments()[name])
    refs = config_refs(container)
    for variable in DURABILITY_VARIABLES:
        assert refs.get(variable) == ("moderation", variable), variable
    assert settings_env(container)["MODERATION_DURABILITY"] in DURABILITY_MODES
    assert not set(DURABILITY_VARIABLES) & set(plain_env(container)), "not also set literally"


def test_config_map_holds_valid_durability_settings() -> None:
    data = one("ConfigMap", "moderation")["data"]
    assert set(data) == set(DURABILITY_VARIABLES)
    assert all(isinstance(value, str) for value in data.values()), "ConfigMap values are strings"
    settings = from_env(data)
    assert settings.durability == "disk"
    assert (settings.durability_timeout, settings.durability_replicas) == (
        Settings().durability_timeout,
        Settings().durability_replicas,
    )


def test_config_map_values_are_checked() -> None:
    """A value the service would refuse is caught here, not by a crash-looping pod."""
    with pytest.raises(SettingsError) as refused:
        from_env({"MODERATION_DURABILITY": "fsync"})
    assert refused.value.variable == "MODERATION_DURABILITY"
    api = only_container(one("Deployment", API))
    misnamed = {**api, "env": [*api["env"], config_ref("MODERATION_DURABILITY", "DURABILITY")]}
    with pytest.raises(AssertionError, match="no key DURABILITY"):
        config_values(misnamed)


def config_ref(variable: str, key: str, name: str = "moderation") -> dict[str, Any]:
    return {"name": variable, "valueFrom": {"configMapKeyRef": {"name": name, "key": key}}}


def durability_values_in_docs() -> list[tuple[str, str]]:
    """(file, value) for every `MODERATION_DURABILITY: x` or `=x` the files under deploy/ show."""
    found = []
    for path in sorted(DEPLOY.rglob("*")):
        if path.is_file():
            for value in re.findall(
                r"\bMODERATION_DURABILITY[:=]\s*[`\"']?([A-Za-z_-]+)", path.read_text()
            ):
                found.append((str(path.relative_to(DEPLOY)), value))
    return found


def test_durability_values_in_comments_and_readme_are_valid() -> None:
    found = durability_values_in_docs()
    assert ("config.yaml", "disk") in found
    assert ("secret.example.yaml", "replica") in found, "recommended with the Sentinel URL"
    assert {value for _, value in found} <= set(DURABILITY_MODES), found
    assert "replica" in {value for file, value in found if file == "README.md"}, (
        "the README recommends replica with Sentinel"
    )


def dockerfile_user() -> tuple[int, int]:
    users = re.findall(r"^USER\s+(\d+):(\d+)\s*$", (ROOT / "Dockerfile").read_text(), re.M)
    assert users, "the Dockerfile runs as a numeric user"
    uid, gid = users[-1]
    return int(uid), int(gid)


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_pods_run_locked_down_as_the_image_user(name: str) -> None:
    deployment = deployments()[name]
    spec = pod_spec(deployment)
    uid, gid = dockerfile_user()
    security = spec["securityContext"]
    assert security["runAsNonRoot"] is True
    assert (security["runAsUser"], security["runAsGroup"]) == (uid, gid)
    assert security["seccompProfile"]["type"] == "RuntimeDefault"
    assert spec["automountServiceAccountToken"] is False
    volumes = {volume["name"]: volume for volume in spec.get("volumes", [])}
    for container in containers(deployment):
        context = container["securityContext"]
        assert context["runAsNonRoot"] is True
        assert context["allowPrivilegeEscalation"] is False
        assert context["readOnlyRootFilesystem"] is True
        assert context["capabilities"] == {"drop": ["ALL"]}
        assert "privileged" not in context and "runAsUser" not in context
        # The root filesystem is read-only: /tmp is a scratch volume.
        mounts = {mount["mountPath"]: mount["name"] for mount in container["volumeMounts"]}
        assert "emptyDir" in volumes[mounts["/tmp"]]


def test_namespace_enforces_the_restricted_pod_security_standard() -> None:
    labels = one("Namespace")["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_container_has_requests_and_limits(name: str) -> None:
    for container in containers(deployments()[name]):
        resources = container["resources"]
        for resource in ("cpu", "memory"):
            request = quantity(resources["requests"][resource])
            limit = quantity(resources["limits"][resource])
            assert 0 < request <= limit, f"{name} {resource}"


def test_one_image_for_every_role() -> None:
    images = {c["image"] for d in deployments().values() for c in containers(d)}
    assert len(images) == 1


# --- the scoring workers -------------------------------------------------------------------------


def test_worker_is_sized_for_one_bert_base_process_per_core() -> None:
    worker = one("Deployment", WORKER)
    container = only_container(worker)
    threads = int(plain_env(container)["MODERATION_TORCH_THREADS"])
    assert threads == 1 == int(plain_env(container)["OMP_NUM_THREADS"])
    resources = container["resources"]
    assert quantity(resources["requests"]["cpu"]) == threads, "one core per torch thread"
    assert quantity(resources["limits"]["cpu"]) >= threads
    assert quantity(resources["requests"]["memory"]) >= WORKER_MIN_MEMORY_REQUEST
    assert quantity(resources["limits"]["memory"]) >= WORKER_MIN_MEMORY_LIMIT


def test_worker_finishes_its_job_before_it_is_killed() -> None:
    worker = one("Deployment", WORKER)
    settings = from_env(plain_env(only_container(worker)))
    assert settings.job_timeout == Settings().job_timeout
    assert pod_spec(worker)["terminationGracePeriodSeconds"] > settings.job_timeout


def delivery_job_timeout(settings: Settings, connection: redis.Redis) -> int:
    """The time limit the service gives a webhook delivery job: read off a job it queued."""
    job_id = DeliveryEnqueuer(connection, settings)(None, "news", "c-1")
    return Job.fetch(job_id, connection=connection).timeout


def test_webhooks_finish_their_delivery_before_they_are_killed(redis_client: redis.Redis) -> None:
    webhooks = one("Deployment", WEBHOOKS)
    settings = from_env(plain_env(only_container(webhooks)))
    delivery_timeout = delivery_job_timeout(settings, redis_client)
    # The manifest's own comment, worked out by hand: 4 x 10 s (the default) + 30 s = 70 s.
    assert (settings.webhook_timeout, delivery_timeout) == (10, 70)
    assert pod_spec(webhooks)["terminationGracePeriodSeconds"] > delivery_timeout


def test_api_stops_gracefully() -> None:
    api = one("Deployment", API)
    container = only_container(api)
    settings = from_env(plain_env(container))
    pre_stop = container["lifecycle"]["preStop"]["exec"]["command"]
    assert pre_stop[0] == "sleep"
    # gunicorn's graceful stop as `moderation serve` configures it (its configuration object
    # is built without starting anything); the manifest's comment: 10 s (the default) + 5 s.
    gunicorn_graceful = GunicornApp(settings).cfg.graceful_timeout
    assert (settings.max_wait_seconds, gunicorn_graceful) == (10, 15)
    assert pod_spec(api)["terminationGracePeriodSeconds"] > int(pre_stop[1]) + gunicorn_graceful
    assert api["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0


def test_worker_replicas_are_left_to_keda() -> None:
    assert "replicas" not in one("Deployment", WORKER)["spec"]


# --- KEDA ----------------------------------------------------------------------------------------


def redis_trigger() -> dict[str, Any]:
    (trigger,) = one("ScaledObject")["spec"]["triggers"]
    assert trigger["type"] == "redis"
    return trigger


def test_scaled_object_scales_the_worker_deployment() -> None:
    spec = one("ScaledObject")["spec"]
    target = spec["scaleTargetRef"]
    assert (target.get("apiVersion", "apps/v1"), target.get("kind", "Deployment")) == (
        "apps/v1",
        "Deployment",
    )
    assert target["name"] == WORKER
    # /readyz needs a live worker, so never scale to zero.
    assert 1 <= spec["minReplicaCount"] < spec["maxReplicaCount"]
    assert spec["cooldownPeriod"] > 0


def test_trigger_watches_the_scoring_queue() -> None:
    metadata = redis_trigger()["metadata"]
    assert metadata["listName"] == f"rq:queue:{SCORING_QUEUE}"
    # RQ's own name for the list (building a Queue does not connect to Redis).
    assert metadata["listName"] == scoring_queue(redis.Redis()).key
    assert int(metadata["listLength"]) > 0


def test_trigger_list_holds_the_jobs_the_api_enqueues(
    client: FlaskClient, auth: dict[str, str], redis_client: redis.Redis
) -> None:
    """Submitting a comment puts its scoring job in exactly the list KEDA measures."""
    list_name = redis_trigger()["metadata"]["listName"]
    assert redis_client.llen(list_name) == 0
    for n in range(3):
        response = client.post("/v1/comments", json={"id": f"c-{n}", "content": "hi"}, headers=auth)
        assert response.status_code == 202
    assert redis_client.llen(list_name) == 3


def test_trigger_reaches_the_same_redis_as_the_service() -> None:
    trigger = redis_trigger()
    metadata = trigger["metadata"]
    assert not {"address", "host", "port", "password"} & set(metadata), "credentials via auth"
    auth = one("TriggerAuthentication", trigger["authenticationRef"]["name"])
    refs = {ref["parameter"]: ref for ref in auth["spec"]["secretTargetRef"]}
    assert set(refs) == {"address", "password"}
    template = secret_template()
    for ref in refs.values():
        assert ref["name"] == template["metadata"]["name"]
        assert ref["key"] in KEDA_SECRET_KEYS
    values = secret_values()
    url = urlparse(values["REDIS_URL"])
    assert values[refs["address"]["key"]] == f"{url.hostname}:{url.port}"
    assert values[refs["password"]["key"]] == (url.password or "")
    assert metadata["databaseIndex"] == (url.path.lstrip("/") or "0")
    assert metadata["enableTLS"] == ("true" if url.scheme == "rediss" else "false")


# --- the README ----------------------------------------------------------------------------------


def test_readme_explains_applying_keda_and_sizing() -> None:
    readme = (DEPLOY / "README.md").read_text()
    assert "kubectl apply -k deploy/kubernetes" in readme
    assert "KEDA" in readme and "MODERATION_TORCH_THREADS" in readme
    for path in manifest_files():
        assert path.name in readme, f"README.md does not mention {path.name}"


def readme_commands() -> list[list[str]]:
    """The `moderation ...` commands the README runs in a pod (`kubectl exec ... -- moderation`)."""
    readme = (DEPLOY / "README.md").read_text()
    return [shlex.split(line)[1:] for line in re.findall(r"-- (moderation [^`\n]+)", readme)]


def test_readme_commands_exist() -> None:
    commands = readme_commands()
    assert ["sites", "create", "example", "--json"] in commands, "how to create a site"
    for arguments in commands:
        resolve(arguments)


# --- the Sentinel example (redis-sentinel/) ------------------------------------------------------

REDIS_SET, SENTINEL_SET = "redis", "redis-sentinel"
REDIS_CONFIG = "redis"  # the ConfigMap with the templates and scripts
READ_SERVICE = "redis-read"
# Volume types the `restricted` Pod Security Standard allows.
RESTRICTED_VOLUMES = frozenset(
    {"configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim"}
    | {"projected", "secret"}
)


def sentinel_one(kind: str, name: str) -> dict[str, Any]:
    found = [m.document for m in SENTINEL_MANIFESTS if (m.kind, m.name) == (kind, name)]
    assert len(found) == 1, f"expected one {kind} {name} in redis-sentinel/, found {len(found)}"
    return found[0]


def statefulsets() -> dict[str, dict[str, Any]]:
    return {m.name: m.document for m in SENTINEL_MANIFESTS if m.kind == "StatefulSet"}


def redis_config_data() -> dict[str, str]:
    return sentinel_one("ConfigMap", REDIS_CONFIG)["data"]


def config_lines(text: str) -> list[list[str]]:
    """A redis.conf or sentinel.conf as its directives, split into words (comments dropped)."""
    return [line.split() for line in text.splitlines() if line.strip() and line[0] != "#"]


def redis_directives() -> dict[str, str]:
    return {
        words[0]: " ".join(words[1:]) for words in config_lines(redis_config_data()["redis.conf"])
    }


def sentinel_monitor() -> tuple[str, str, int, int]:
    """(master name, host placeholder, port, quorum) of sentinel.conf's `sentinel monitor`."""
    (monitor,) = [
        words
        for words in config_lines(redis_config_data()["sentinel.conf"])
        if words[:2] == ["sentinel", "monitor"]
    ]
    name, host, port, quorum = monitor[2:]
    return name, host, int(port), int(quorum)


def topology() -> dict[str, str]:
    """topology.env of the ConfigMap: what the scripts assume about the StatefulSets."""
    pairs = [
        line.split("=", 1)
        for line in redis_config_data()["topology.env"].splitlines()
        if line.strip()
    ]
    return {name: value for name, value in pairs}


def container_port(statefulset: dict[str, Any], name: str) -> int:
    for container in pod_spec(statefulset)["containers"]:
        for port in container.get("ports", []):
            if port["name"] == name:
                return port["containerPort"]
    raise AssertionError(f"no container port {name}")


def memory_bytes(value: str) -> int:
    """A redis.conf memory size (`512mb`, `1gb`, `100000`)."""
    match = re.fullmatch(r"(\d+)(k|kb|m|mb|g|gb)?", value.lower())
    assert match, value
    units = {"k": 1000, "kb": 1024, "m": 10**6, "mb": 2**20, "g": 10**9, "gb": 2**30}
    return int(match.group(1)) * units.get(match.group(2) or "", 1)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [  # worked out by hand from redis.conf's units: k, m, g are powers of 10, kb, mb, gb of 2
        ("100000", 100_000),
        ("5m", 5_000_000),
        ("1g", 1_000_000_000),
        ("64kb", 65_536),
        ("512mb", 536_870_912),
        ("1GB", 1_073_741_824),
    ],
)
def test_memory_sizes_are_read_as_redis_reads_them(raw: str, expected: int) -> None:
    assert memory_bytes(raw) == expected


def test_sentinel_example_objects_are_there() -> None:
    kinds = {(m.kind, m.name) for m in SENTINEL_MANIFESTS}
    assert kinds == {
        ("ConfigMap", REDIS_CONFIG),
        ("Service", REDIS_SET),
        ("Service", READ_SERVICE),
        ("StatefulSet", REDIS_SET),
        ("PodDisruptionBudget", REDIS_SET),
        ("Service", SENTINEL_SET),
        ("StatefulSet", SENTINEL_SET),
        ("PodDisruptionBudget", SENTINEL_SET),
    }


def test_sentinel_kustomization_lists_every_file() -> None:
    kustomization = yaml.safe_load((SENTINEL_EXAMPLE / KUSTOMIZATION).read_text())
    assert kustomization["apiVersion"] == "kustomize.config.k8s.io/v1beta1"
    assert kustomization["kind"] == "Kustomization"
    resources = kustomization["resources"]
    assert len(resources) == len(set(resources)), "listed twice"
    assert set(resources) == {p.name for p in manifest_files(SENTINEL_EXAMPLE)}
    # YAML anchors are not for kustomize: every file must be plain.
    for path in manifest_files(SENTINEL_EXAMPLE):
        assert not re.search(r"(:|-)\s+[&*][\w-]+\s*$", path.read_text(), re.M), path.name


def test_readme_describes_the_sentinel_example() -> None:
    readme = (DEPLOY / "README.md").read_text()
    assert "kubectl apply -k deploy/kubernetes/redis-sentinel" in readme
    for path in manifest_files(SENTINEL_EXAMPLE):
        assert f"redis-sentinel/{path.name}" in readme, path.name
    for topic in ("Managed Redis", "Redis Cluster", "not supported"):
        assert topic in readme


def test_statefulset_schema_catches_mistakes() -> None:
    redis_set = statefulsets()[REDIS_SET]
    (claim,) = redis_set["spec"]["volumeClaimTemplates"]
    misspelt = {**claim, "spec": {**claim["spec"], "accesModes": ["ReadWriteOnce"]}}
    broken = {**redis_set, "spec": {**redis_set["spec"], "volumeClaimTemplates": [misspelt]}}
    assert kubernetes_errors(broken, KUBERNETES_VERSIONS[-1])


@pytest.mark.parametrize("name", [REDIS_SET, SENTINEL_SET])
def test_statefulset_has_a_headless_service_for_its_pods_only(name: str) -> None:
    """The pods' DNS names (redis-0.redis, ...) come from a headless Service named by
    serviceName, published before the pods are ready (replicas and Sentinels need them then)."""
    statefulset = statefulsets()[name]
    spec = statefulset["spec"]
    selector = spec["selector"]["matchLabels"]
    assert selector.items() <= spec["template"]["metadata"]["labels"].items()
    service = sentinel_one("Service", spec["serviceName"])
    assert service["spec"]["clusterIP"] == "None"
    assert service["spec"]["publishNotReadyAddresses"] is True
    assert service["spec"]["selector"] == selector
    for other_name, other in statefulsets().items():
        if other_name != name:
            labels = other["spec"]["template"]["metadata"]["labels"]
            assert not selector.items() <= labels.items(), f"{name} selects {other_name}'s pods"
    (port,) = service["spec"]["ports"]
    assert container_port(statefulset, port["targetPort"]) == port["port"]
    budget = sentinel_one("PodDisruptionBudget", name)
    assert budget["spec"]["selector"]["matchLabels"] == selector
    assert budget["spec"]["maxUnavailable"] == 1


def test_read_service_sends_to_the_redis_pods_only() -> None:
    service = sentinel_one("Service", READ_SERVICE)
    assert service["spec"].get("type", "ClusterIP") == "ClusterIP"
    assert service["spec"].get("clusterIP") != "None", "one address for KEDA"
    assert not service["spec"].get("publishNotReadyAddresses"), "ready pods only"
    redis_set, sentinel_set = statefulsets()[REDIS_SET], statefulsets()[SENTINEL_SET]
    selector = service["spec"]["selector"]
    assert selector.items() <= redis_set["spec"]["template"]["metadata"]["labels"].items()
    assert not selector.items() <= sentinel_set["spec"]["template"]["metadata"]["labels"].items()
    (port,) = service["spec"]["ports"]
    assert port["port"] == container_port(redis_set, port["targetPort"]) == 6379


def test_topology_the_scripts_assume_is_the_statefulsets() -> None:
    assumed = topology()
    redis_set, sentinel_set = statefulsets()[REDIS_SET], statefulsets()[SENTINEL_SET]
    assert assumed["REDIS_SERVICE"] == REDIS_SET == redis_set["spec"]["serviceName"]
    assert int(assumed["REDIS_PODS"]) == redis_set["spec"]["replicas"]
    assert assumed["SENTINEL_SERVICE"] == SENTINEL_SET == sentinel_set["spec"]["serviceName"]
    assert int(assumed["SENTINEL_PODS"]) == sentinel_set["spec"]["replicas"]
    assert assumed["CLUSTER_DOMAIN"] == "cluster.local"
    # The ports the scripts and templates use are the ones the pods listen on.
    common = redis_config_data()["common.sh"]
    assert f"REDIS_PORT={container_port(redis_set, 'redis')}" in common
    assert f"SENTINEL_PORT={container_port(sentinel_set, 'sentinel')}" in common
    assert redis_directives()["port"] == str(container_port(redis_set, "redis"))
    sentinel_conf = dict(
        (words[0], words[1]) for words in config_lines(redis_config_data()["sentinel.conf"])
    )
    assert sentinel_conf["port"] == str(container_port(sentinel_set, "sentinel"))
    assert sentinel_monitor()[2] == container_port(redis_set, "redis")


def test_sentinel_quorum_is_a_majority_of_the_sentinels() -> None:
    """Quorum <= Sentinels, or no failover can ever happen; more than half, so a minority cut
    off from the master cannot call it down; and three or more, odd, so losing one Sentinel
    still leaves the majority a failover needs."""
    _, _, _, quorum = sentinel_monitor()
    sentinels = statefulsets()[SENTINEL_SET]["spec"]["replicas"]
    assert sentinels >= 3 and sentinels % 2 == 1
    assert sentinels // 2 < quorum <= sentinels
    assert statefulsets()[REDIS_SET]["spec"]["replicas"] >= 3, "a master and two replicas"


def test_example_redis_is_durable_and_never_evicts() -> None:
    directives = redis_directives()
    assert directives["appendonly"] == "yes"
    assert directives["dir"] == "/data"
    images = {c["image"] for s in statefulsets().values() for c in containers(s)}
    (image,) = images
    # The server fsyncs before it replies, replicas included (a promoted replica keeps the
    # same promise): MODERATION_DURABILITY refuses anything else (moderation/storage/durability.py).
    assert image_has_waitaof(image)
    assert directives["appendfsync"] == "always"
    assert directives["maxmemory-policy"] == "noeviction"
    # Rewriting the append-only file forks: in the worst case every page is copied, so
    # maxmemory must leave the other half of the limit for the copy.
    (redis_container,) = pod_spec(statefulsets()[REDIS_SET])["containers"]
    limit = quantity(redis_container["resources"]["limits"]["memory"])
    assert 0 < memory_bytes(directives["maxmemory"]) <= limit / 2
    # The append-only file is on the pod's own PersistentVolume.
    (claim,) = statefulsets()[REDIS_SET]["spec"]["volumeClaimTemplates"]
    mounts = {m["mountPath"]: m["name"] for m in redis_container["volumeMounts"]}
    assert mounts["/data"] == claim["metadata"]["name"]
    assert claim["spec"]["accessModes"] == ["ReadWriteOnce"]


def test_image_versions_are_read_from_the_tag() -> None:
    assert image_has_waitaof("valkey/valkey:9-alpine") and image_has_waitaof("redis:7.4-alpine")
    assert not image_has_waitaof("redis:7-alpine"), "7 may be 7.0"
    assert not image_has_waitaof("redis:6.2")


def test_server_commands_match_the_image() -> None:
    """valkey-server/valkey-cli with a Valkey image, redis-server/redis-cli with a Redis one, in
    the containers and in the scripts they run."""
    (image,) = {c["image"] for s in statefulsets().values() for c in containers(s)}
    ours, other = ("valkey", "redis") if image.startswith("valkey/") else ("redis", "valkey")
    for name, statefulset in statefulsets().items():
        for container in containers(statefulset):
            text = json.dumps(container)
            assert f"{other}-server" not in text and f"{other}-cli" not in text, name
    scripts = "".join(text for key, text in redis_config_data().items() if key.endswith(".sh"))
    assert f"{ours}-cli" in scripts and f"{other}-cli" not in scripts


def mounts_of(container: dict[str, Any], statefulset: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """mountPath -> the volume mounted there."""
    spec = pod_spec(statefulset)
    volumes = {volume["name"]: volume for volume in spec.get("volumes", [])}
    for claim in statefulset["spec"].get("volumeClaimTemplates", []):
        volumes[claim["metadata"]["name"]] = {"persistentVolumeClaim": {}}
    return {mount["mountPath"]: volumes[mount["name"]] for mount in container["volumeMounts"]}


@pytest.mark.parametrize("name", [REDIS_SET, SENTINEL_SET])
def test_init_container_writes_the_configuration_the_server_reads(name: str) -> None:
    statefulset = statefulsets()[name]
    spec = pod_spec(statefulset)
    (init,) = spec["initContainers"]
    (server,) = spec["containers"]
    shell, script, written = init["command"]
    assert shell == "sh"
    assert server["command"][1] == written, "the server reads what the init container wrote"
    assert server["command"][0].endswith("-server")
    if name == SENTINEL_SET:
        assert server["command"][2:] == ["--sentinel"]
    data = redis_config_data()
    init_mounts, server_mounts = mounts_of(init, statefulset), mounts_of(server, statefulset)
    scripts_dir, script_name = script.rsplit("/", 1)
    assert script_name in data
    assert init_mounts[scripts_dir]["configMap"]["name"] == REDIS_CONFIG
    config_dir = written.rsplit("/", 1)[0]
    assert "emptyDir" in init_mounts[config_dir]
    assert server_mounts[config_dir] is init_mounts[config_dir], "the same emptyDir"
    # What the scripts need from the pod.
    for container in (init, *([server] if "lifecycle" in server else [])):
        env = {item["name"]: item.get("valueFrom", {}) for item in container["env"]}
        assert env["POD_NAME"] == {"fieldRef": {"fieldPath": "metadata.name"}}
        assert env["POD_NAMESPACE"] == {"fieldRef": {"fieldPath": "metadata.namespace"}}
        password = env["REDIS_PASSWORD"]["secretKeyRef"]
        assert (password["name"], password["key"]) == ("moderation", "REDIS_PASSWORD")
        assert password["key"] in KEDA_SECRET_KEYS, "the Secret template has it"
    if "lifecycle" in server:
        _, pre_stop = server["lifecycle"]["preStop"]["exec"]["command"]
        scripts_dir, pre_stop_name = pre_stop.rsplit("/", 1)
        assert pre_stop_name in data
        assert server_mounts[scripts_dir]["configMap"]["name"] == REDIS_CONFIG
        assert pod_spec(statefulset)["terminationGracePeriodSeconds"] > 30, "the wait + shutdown"


def test_scripts_and_probes_are_valid_shell() -> None:
    scripts = [text for key, text in redis_config_data().items() if key.endswith(".sh")]
    assert len(scripts) == 4
    probes = [
        probe["exec"]["command"][2]
        for statefulset in statefulsets().values()
        for container in pod_spec(statefulset)["containers"]
        for probe in (container["readinessProbe"], container["livenessProbe"])
        if probe["exec"]["command"][:2] == ["sh", "-c"]
    ]
    assert probes
    for text in [*scripts, *probes]:
        result = subprocess.run(["sh", "-n", "-c", text], capture_output=True, text=True)
        assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("name", [REDIS_SET, SENTINEL_SET])
def test_pods_meet_the_restricted_pod_security_standard(name: str) -> None:
    """They run in the `moderation` namespace, which enforces `restricted`."""
    statefulset = statefulsets()[name]
    spec = pod_spec(statefulset)
    security = spec["securityContext"]
    assert security["runAsNonRoot"] is True and security["runAsUser"] > 0
    assert security["seccompProfile"]["type"] == "RuntimeDefault"
    assert spec["automountServiceAccountToken"] is False
    assert not {"hostNetwork", "hostPID", "hostIPC"} & set(spec)
    for volume in spec["volumes"]:
        (kind,) = set(volume) - {"name"}
        assert kind in RESTRICTED_VOLUMES, volume["name"]
    for container in containers(statefulset):
        context = container["securityContext"]
        assert context["runAsNonRoot"] is True
        assert context["allowPrivilegeEscalation"] is False
        assert context["readOnlyRootFilesystem"] is True
        assert context["capabilities"] == {"drop": ["ALL"]}
        assert "privileged" not in context
        resources = container["resources"]
        for resource in ("cpu", "memory"):
            request = quantity(resources["requests"][resource])
            assert 0 < request <= quantity(resources["limits"][resource]), f"{name} {resource}"


# The REDIS_URL (and KEDA's variables) the Secret template shows for the Sentinel example.


def sentinel_secret_example() -> dict[str, str]:
    text = (DEPLOY / SECRET_TEMPLATE).read_text()
    shown = dict(re.findall(r"^#\s+(REDIS_URL|REDIS_ADDRESS|REDIS_PASSWORD): (\S+)$", text, re.M))
    assert set(shown) == {"REDIS_URL", "REDIS_ADDRESS", "REDIS_PASSWORD"}, shown
    return shown


def test_secret_example_shows_the_sentinel_url_of_the_example() -> None:
    shown = sentinel_secret_example()
    address = parse_sentinel_url(shown["REDIS_URL"])
    sentinel_set = statefulsets()[SENTINEL_SET]
    service = sentinel_set["spec"]["serviceName"]
    port = container_port(sentinel_set, "sentinel")
    assert address.sentinels == tuple(
        (f"{SENTINEL_SET}-{n}.{service}", port) for n in range(sentinel_set["spec"]["replicas"])
    ), "every Sentinel, by the DNS name its headless Service gives it"
    assert address.master == sentinel_monitor()[0]
    assert address.password == shown["REDIS_PASSWORD"], "the Redis pods' password"
    assert address.sentinel_password is None, "the example's Sentinels have none"
    assert str(address.db) == redis_trigger()["metadata"]["databaseIndex"]
    # The service accepts it as REDIS_URL.
    assert from_env({"REDIS_URL": shown["REDIS_URL"]}).redis_url == shown["REDIS_URL"]


def test_parse_sentinel_url_refuses_what_the_example_must_not_show() -> None:
    with pytest.raises(ValueError):
        parse_sentinel_url("redis+sentinel://redis-sentinel-0.redis-sentinel/mymaster/0")
    with pytest.raises(ValueError):
        parse_sentinel_url("redis+sentinel://redis-sentinel-0.redis-sentinel:26379/mymaster/x")


def test_secret_example_points_keda_at_the_read_service() -> None:
    """KEDA runs in its own namespace: it needs the Service's full name, and any ready Redis
    pod answers LLEN on the queue."""
    host, port = sentinel_secret_example()["REDIS_ADDRESS"].rsplit(":", 1)
    assert host == f"{READ_SERVICE}.{NAMESPACE}.svc.{topology()['CLUSTER_DOMAIN']}"
    (service_port,) = sentinel_one("Service", READ_SERVICE)["spec"]["ports"]
    assert int(port) == service_port["port"]


# The init scripts, run against a stand-in valkey-cli.

FAKE_CLI = """#!{python}
# Plays the Sentinels and Redis pods the scripts ask: the state file says who answers what.
import json, os, sys
args = sys.argv[1:]
options = {{}}
while args and args[0].startswith("-"):
    options[args[0]], args = args[1], args[2:]
path = os.environ["FAKE_STATE"]
with open(path) as file:
    state = json.load(file)
where = options["-h"] + ":" + options["-p"]
auth = os.environ.get("VALKEYCLI_AUTH") or os.environ.get("REDISCLI_AUTH")
state["calls"].append([where, auth, args])
server = state["servers"].get(where)
reply, status = "", 0
if server is None or server.get("down", 0) > 0:
    if server is not None:
        server["down"] -= 1
    print("Could not connect to " + where, file=sys.stderr)
    status = 1
elif [word.lower() for word in args[:2]] == ["sentinel", "get-master-addr-by-name"]:
    if server.get("master"):
        reply = server["master"] + "\\n6379\\n"
elif [word.lower() for word in args[:2]] == ["sentinel", "failover"]:
    for other in state["servers"].values():
        if "master" in other:
            other["master"] = state["failover_to"]
    reply = "OK\\n"
elif [word.lower() for word in args] == ["info", "replication"]:
    reply = "# Replication\\r\\nrole:" + server["role"] + "\\r\\n"
with open(path, "w") as file:
    json.dump(state, file)
sys.stdout.write(reply)
sys.exit(status)
"""

PASSWORD = "s3cret-Password_1"


def redis_pod(n: int) -> str:
    return f"{REDIS_SET}-{n}.{REDIS_SET}.{NAMESPACE}.svc.cluster.local"


def sentinel_pod(n: int) -> str:
    return f"{SENTINEL_SET}-{n}.{SENTINEL_SET}.{NAMESPACE}.svc.cluster.local"


@dataclass
class Pods:
    """The ConfigMap's files in a directory, and a fake cluster for its scripts to ask."""

    directory: Path

    def __post_init__(self) -> None:
        self.scripts = self.directory / "scripts"
        self.scripts.mkdir()
        for key, text in redis_config_data().items():
            (self.scripts / key).write_text(text)
        bin_dir = self.directory / "bin"
        bin_dir.mkdir()
        cli = bin_dir / "valkey-cli"
        cli.write_text(FAKE_CLI.format(python=sys.executable))
        cli.chmod(0o755)
        self.state_file = self.directory / "state.json"
        self.set_state({})

    def set_state(self, servers: dict[str, dict[str, Any]], failover_to: str = "") -> None:
        state = {"servers": servers, "calls": [], "failover_to": failover_to}
        self.state_file.write_text(json.dumps(state))

    def calls(self) -> list[tuple[str, str | None, list[str]]]:
        return [tuple(call) for call in json.loads(self.state_file.read_text())["calls"]]

    def run(
        self, script: str, pod: str, *arguments: str, password: str = PASSWORD, wait: int = 0
    ) -> subprocess.CompletedProcess[str]:
        env = {
            "PATH": f"{self.directory / 'bin'}{os.pathsep}{os.environ['PATH']}",
            "FAKE_STATE": str(self.state_file),
            "POD_NAME": pod,
            "POD_NAMESPACE": NAMESPACE,
            "REDIS_PASSWORD": password,
            "SENTINEL_WAIT": str(wait),
            # As in the Redis container, for the probes: the scripts must not send it to Sentinels.
            "VALKEYCLI_AUTH": password,
        }
        command = ["sh", str(self.scripts / script), *arguments]
        return subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)

    def redis_config(self, pod: str, **kwargs: Any) -> dict[str, str]:
        out = self.directory / f"{pod}.conf"
        result = self.run("redis-init.sh", pod, str(out), **kwargs)
        assert result.returncode == 0, result.stderr
        return {words[0]: " ".join(words[1:]) for words in config_lines(out.read_text())}

    def sentinel_config(self, pod: str) -> list[list[str]]:
        out = self.directory / f"{pod}.conf"
        result = self.run("sentinel-init.sh", pod, str(out))
        assert result.returncode == 0, result.stderr
        return config_lines(out.read_text())


@pytest.fixture
def pods(tmp_path: Path) -> Pods:
    return Pods(tmp_path)


def sentinels_naming(
    master: str, answering: tuple[int, ...] = (0, 1, 2)
) -> dict[str, dict[str, Any]]:
    return {f"{sentinel_pod(n)}:26379": {"master": master} for n in answering}


def monitored(config: list[list[str]]) -> str:
    (monitor,) = [words for words in config if words[:2] == ["sentinel", "monitor"]]
    return monitor[3]


def test_first_start_makes_redis_0_the_master(pods: Pods) -> None:
    """Nothing answers yet: redis-0 starts as master, the others replicate it, and the
    Sentinels watch it."""
    first = pods.redis_config("redis-0")
    assert "replicaof" not in first
    assert first["replica-announce-ip"] == redis_pod(0)
    assert (first["requirepass"], first["masterauth"]) == (PASSWORD, PASSWORD)
    second = pods.redis_config("redis-2")
    assert second["replicaof"] == f"{redis_pod(0)} 6379"
    assert second["replica-announce-ip"] == redis_pod(2)
    assert monitored(pods.sentinel_config("redis-sentinel-1")) == redis_pod(0)


def test_a_restarted_pod_follows_the_master_the_sentinels_name(pods: Pods) -> None:
    """After a failover to redis-2, a restarted redis-0 (the old master) becomes its replica,
    and redis-2 stays master, whatever the pods' numbers."""
    pods.set_state(sentinels_naming(redis_pod(2), answering=(1,)))
    assert pods.redis_config("redis-0")["replicaof"] == f"{redis_pod(2)} 6379"
    assert "replicaof" not in pods.redis_config("redis-2")
    assert monitored(pods.sentinel_config("redis-sentinel-0")) == redis_pod(2)
    # The Sentinels were asked without the Redis password (they have none and would refuse
    # AUTH); the Redis pods only with it.
    calls = pods.calls()
    assert calls and all(auth is None for where, auth, _ in calls if where.endswith(":26379"))
    assert all(auth == PASSWORD for where, auth, _ in calls if where.endswith(":6379"))


def test_without_sentinels_a_pod_running_as_master_is_followed(pods: Pods) -> None:
    pods.set_state(
        {f"{redis_pod(1)}:6379": {"role": "master"}, f"{redis_pod(2)}:6379": {"role": "slave"}}
    )
    assert pods.redis_config("redis-0")["replicaof"] == f"{redis_pod(1)} 6379"
    assert monitored(pods.sentinel_config("redis-sentinel-2")) == redis_pod(1)
    assert all(auth == PASSWORD for where, auth, _ in pods.calls() if where.endswith(":6379"))


def test_a_redis_pod_waits_for_the_sentinels_before_guessing(pods: Pods) -> None:
    """At a restart of everything the Sentinels may come up after the Redis pods: the pods ask
    again (for SENTINEL_WAIT seconds) rather than trust a stale master or pick redis-0."""
    servers = sentinels_naming(redis_pod(2), answering=(0,))
    servers[f"{sentinel_pod(0)}:26379"]["down"] = 1
    servers[f"{redis_pod(1)}:6379"] = {"role": "master"}
    pods.set_state(servers)
    assert pods.redis_config("redis-0", wait=20)["replicaof"] == f"{redis_pod(2)} 6379"


def test_scripts_refuse_a_missing_or_unusable_password(pods: Pods) -> None:
    for password in ("", "with space", "p@ss/word"):
        result = pods.run(
            "redis-init.sh", "redis-0", str(pods.directory / "x.conf"), password=password
        )
        assert result.returncode != 0 and "REDIS_PASSWORD" in result.stderr, password
        result = pods.run(
            "sentinel-init.sh",
            "redis-sentinel-0",
            str(pods.directory / "y.conf"),
            password=password,
        )
        assert result.returncode != 0 and "REDIS_PASSWORD" in result.stderr, password


def test_the_master_hands_over_before_it_stops(pods: Pods) -> None:
    pods.set_state(sentinels_naming(redis_pod(0)), failover_to=redis_pod(1))
    result = pods.run("redis-prestop.sh", "redis-0")
    assert result.returncode == 0, result.stderr
    failovers = [args for _, _, args in pods.calls() if args[:2] == ["SENTINEL", "failover"]]
    assert failovers == [["SENTINEL", "failover", "mymaster", "COORDINATED"]], "once, coordinated"
    # A replica stopping asks for nothing.
    pods.set_state(sentinels_naming(redis_pod(0)), failover_to=redis_pod(1))
    assert pods.run("redis-prestop.sh", "redis-2").returncode == 0
    assert not [args for _, _, args in pods.calls() if args[:2] == ["SENTINEL", "failover"]]


# The configurations the scripts write, loaded by a real Valkey 9 (the example's image).


@contextmanager
def valkey_process(
    config: Path, log: Path, *extra: str, password: str | None = None
) -> Iterator[redis.Redis]:
    """Valkey 9 started from `config` (on a free local port), and a client of it once it answers."""
    port = free_port()
    command = [valkey_server(), str(config), "--port", str(port), "--bind", "127.0.0.1"]
    process = subprocess.Popen([*command, *extra, "--logfile", str(log)], stdout=subprocess.DEVNULL)
    client = redis.Redis(port=port, password=password, decode_responses=True)

    def answers() -> bool:
        assert process.poll() is None, log.read_text()[-2000:] if log.exists() else "exited"
        try:
            return bool(client.ping())
        except redis.ConnectionError:
            return False

    try:
        wait_for(answers, timeout=10, what=f"Valkey with {config.name}")
        yield client
    finally:
        client.close()
        process.terminate()
        process.wait(timeout=10)


def local(text: str, directory: Path) -> str:
    """The configuration with `dir` moved to a local directory (the pod's /data and /config)."""
    return re.sub(r"^dir .*$", f"dir {directory}", text, flags=re.M)


def test_valkey_runs_the_written_redis_configuration(pods: Pods, tmp_path: Path) -> None:
    pods.set_state(sentinels_naming(redis_pod(0)))
    pods.redis_config("redis-1")
    data = tmp_path / "data"
    data.mkdir()
    config = tmp_path / "redis-1.local.conf"
    config.write_text(local((pods.directory / "redis-1.conf").read_text(), data))
    with valkey_process(config, data / "log", password=PASSWORD) as client:
        settings = client.config_get("*")
        assert settings["appendonly"] == "yes" and settings["appendfsync"] == "always"
        assert settings["maxmemory-policy"] == "noeviction"
        assert settings["replica-announce-ip"] == redis_pod(1)
        replication = client.info("replication")
        assert replication["role"] == "slave" and replication["master_host"] == redis_pod(0)
        assert "waitaof" in client.execute_command("COMMAND", "INFO", "WAITAOF")
        assert settings["requirepass"] == settings["masterauth"] == PASSWORD


def test_valkey_sentinel_runs_the_written_sentinel_configuration(
    pods: Pods, tmp_path: Path
) -> None:
    pods.set_state(sentinels_naming(redis_pod(2), answering=(2,)))
    pods.sentinel_config("redis-sentinel-0")
    config = tmp_path / "sentinel.local.conf"
    config.write_text(local((pods.directory / "redis-sentinel-0.conf").read_text(), tmp_path))
    with valkey_process(config, tmp_path / "sentinel.log", "--sentinel") as client:
        master = client.sentinel_master("mymaster")
        assert (master["ip"], master["port"]) == (redis_pod(2), 6379), "by name, not address"
        assert master["quorum"] == sentinel_monitor()[3]
        # Sentinel rewrote its file (it must be writable: an emptyDir) and kept the names.
        rewritten = config.read_text()
        assert re.search(
            rf'^sentinel announce-ip "?{re.escape(sentinel_pod(0))}"?$', rewritten, re.M
        )
        assert re.search(r"^sentinel resolve-hostnames yes$", rewritten, re.M)
        assert not re.search(r"@[A-Z]+@", rewritten), "every placeholder filled in"
