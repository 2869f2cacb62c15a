"""The Kubernetes manifests in deploy/kubernetes/, checked without a cluster.

Core objects are validated against the Kubernetes JSON schemas (strict) that kubernetes-validate
ships, and KEDA's objects against a schema built from cloudcoil-models-keda's models of KEDA's
CRDs (see tests/support/k8s_schemas.py). Then the manifests are checked against what the code
really has: the `moderation` commands, the settings' environment variables, the operator
endpoints, the Dockerfile's user, the job timeouts, and the Redis list RQ keeps the scoring
queue in (which KEDA watches).
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import click
import pytest
import redis
import yaml
from flask.testing import FlaskClient

from moderation.queue import SCORING_QUEUE, scoring_queue
from moderation.settings import ENVIRONMENT_VARIABLES, Settings, SettingsError, from_env
from tests.support.cli_commands import resolve
from tests.support.k8s_schemas import KEDA_KINDS, keda_validator, kubernetes_errors

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy" / "kubernetes"
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


def manifest_files() -> list[Path]:
    return sorted(path for path in DEPLOY.glob("*.yaml") if path.name != KUSTOMIZATION)


def load_manifests() -> list[Manifest]:
    return [
        Manifest(path.name, document)
        for path in manifest_files()
        for document in yaml.safe_load_all(path.read_text())
        if document is not None
    ]


MANIFESTS = load_manifests()


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
    for manifest in MANIFESTS:
        namespace = manifest.document["metadata"].get("namespace")
        if manifest.kind in CLUSTER_SCOPED:
            assert namespace is None, ids(manifest)
        else:
            assert namespace == NAMESPACE, ids(manifest)


# --- schemas -------------------------------------------------------------------------------------


CORE = [m for m in MANIFESTS if not m.document["apiVersion"].startswith("keda.sh/")]
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
    text = "".join(path.read_text() for path in DEPLOY.iterdir() if path.is_file())
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
    env = {**plain_env(container), "MODERATION_SECRET_KEY": "x" * 48}
    env["REDIS_URL"] = secret_values()["REDIS_URL"]
    settings = from_env(env)
    if name == API:
        assert (settings.host, settings.port) == ("0.0.0.0", 8000)
        assert settings.web_concurrency >= 1


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


def test_webhooks_finish_their_delivery_before_they_are_killed() -> None:
    webhooks = one("Deployment", WEBHOOKS)
    settings = from_env(plain_env(only_container(webhooks)))
    delivery_timeout = int(settings.webhook_timeout * 4) + 30  # as moderation.queue sets it
    assert pod_spec(webhooks)["terminationGracePeriodSeconds"] > delivery_timeout


def test_api_stops_gracefully() -> None:
    api = one("Deployment", API)
    container = only_container(api)
    settings = from_env(plain_env(container))
    pre_stop = container["lifecycle"]["preStop"]["exec"]["command"]
    assert pre_stop[0] == "sleep"
    gunicorn_graceful = int(settings.max_wait_seconds) + 5  # as moderation.server sets it
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
