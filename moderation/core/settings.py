"""One typed Settings object built from the environment; the only module that reads it.

Every variable is parsed at start. A bad value raises `SettingsError` naming the variable,
and the command line turns that into a one-line message and a non-zero exit.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlparse

from limits import parse_many

from moderation.core.redis_connections import check_url

T = TypeVar("T")

TOXICITY_VARIANTS = ("original", "unbiased", "multilingual", "original-small", "unbiased-small")
PRECISIONS = ("fp32", "bf16", "int8", "auto")
#: What runs a Detoxify model (`auto`: the fastest accurate one installed, measured once).
RUNTIMES = ("torch", "onnxruntime", "openvino", "auto")
UNSCORED_LANGUAGE_ACTIONS = ("hold", "approve")
#: What happens to a comment by an author a moderator banned.
BANNED_AUTHOR_ACTIONS = ("reject", "hold")
#: What a 202 (and a decision) waits for: nothing more than Redis's reply (`off`), the write
#: on Redis's disk (`disk`), and on the disk and at least one replica as well (`replica`).
DURABILITY_MODES = ("off", "disk", "replica")

DEFAULT_HOLD_THRESHOLDS: dict[str, float] = {
    "toxicity": 0.80,
    "severe_toxicity": 0.50,
    "obscene": 0.80,
    "threat": 0.60,
    "insult": 0.80,
    "identity_attack": 0.60,
    "sexual_explicit": 0.80,
    "spam": 0.70,
}
DEFAULT_REJECT_THRESHOLDS: dict[str, float] = {
    "toxicity": 0.97,
    "severe_toxicity": 0.90,
    "threat": 0.95,
    "identity_attack": 0.95,
    "spam": 0.97,
}


class SettingsError(ValueError):
    """A configuration variable has a value the service cannot use."""

    def __init__(self, variable: str, problem: str) -> None:
        super().__init__(f"{variable}: {problem}")
        self.variable = variable


@dataclass(frozen=True)
class PolicySettings:
    """A moderation policy. The environment gives the service-wide default (version 0); a site
    may replace it with its own (`PUT /v1/policy`, versions 1, 2, ...)."""

    hold: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_HOLD_THRESHOLDS))
    reject: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_REJECT_THRESHOLDS))
    auto_reject: bool = False
    max_links: int = 2
    premoderate: bool = False
    banned_words: tuple[str, ...] = ()
    suspect_words: tuple[str, ...] = ()
    trusted_after: int = 0
    #: Comments in a language no live toxicity model reads: "hold" them or "approve" them
    #: (spam is still scored in every language).
    unscored_languages: str = "hold"
    #: Distinct readers' reports that send a published comment back to review (0: never).
    report_threshold: int = 3
    #: Hold an author's comments until this many of theirs were approved (0: off).
    premoderate_new_authors: int = 0
    #: "reject" (default) or "hold" the comments of an author a moderator banned.
    banned_authors: str = "reject"
    version: int = 0


@dataclass(frozen=True)
class Settings:
    """Everything the API, the workers and the command line need to know."""

    redis_url: str = "redis://127.0.0.1:6379/0"
    host: str = "127.0.0.1"
    port: int = 8000
    secret_key: str | None = None
    toxicity_model: str = "auto"
    detoxify_config_dir: Path | None = None
    #: The languages the toxicity model reads (ISO 639-1); None: what the model is known for.
    toxicity_languages: frozenset[str] | None = None
    #: `auto` for either: the fastest engine that scores within 0.02 of fp32 torch, measured
    #: by the first worker with the model on a kind of machine and kept in Redis for the rest.
    precision: str = "auto"
    runtime: str = "auto"
    #: Where models exported to ONNX Runtime or OpenVINO are kept (None: ~/.cache/moderation).
    engine_cache_dir: Path | None = None
    max_tokens: int = 256
    torch_threads: int = 1
    #: Jobs a worker takes at once: sorted by length into passes of `pass_size`, so more of
    #: them pad less (bert-base int8 on 2 cores: 37/s at 16, 47/s at 64, 54/s at 128); checks
    #: cut in between passes, so the batch does not make them wait longer.
    batch_size: int = 64
    pass_size: int = 4
    batch_wait: float = 0.01
    model_load_timeout: float = 20.0
    allow_private_callbacks: bool = False
    secure_cookies: bool = False
    max_body_bytes: int = 1024 * 1024
    max_batch_bytes: int = 16 * 1024 * 1024
    retention_days: float = 0.0
    max_wait_seconds: float = 10.0
    #: Seconds `POST /coral/<site>` waits for a score: under Coral's 200 ms phase timeout.
    coral_timeout: float = 0.18
    durability: str = "off"
    #: Seconds a write waits for Redis to confirm it is on disk (or at a replica).
    durability_timeout: float = 2.0
    #: Replicas that must confirm a write with `durability` = replica.
    durability_replicas: int = 1
    web_concurrency: int = 2
    web_threads: int = 8
    job_timeout: int = 60
    webhook_timeout: float = 10.0
    webhook_retry_intervals: tuple[int, ...] = (10, 60, 300, 900, 1800, 3600, 7200)
    job_retries: int = 3
    #: Seconds before each retry of a failed scoring job (the last repeats if `job_retries`
    #: asks for more retries).
    scoring_retry_intervals: tuple[int, ...] = (2, 10, 60)
    sweep_after: float = 30.0
    duplicate_window: int = 3600
    burst_window: int = 60
    log_level: str = "INFO"
    log_format: str = "json"
    # Rate limits in flask-limiter's notation ("6000 per minute; 200 per second"); None: off.
    rate_limit_site: str | None = "6000 per minute"
    rate_limit_moderator: str | None = "600 per minute"
    rate_limit_login: str | None = "30 per minute"
    login_failure_limit: str | None = "3 per minute; 10 per hour"
    auth_failure_limit: str | None = "100 per minute"
    proxy_hops: int = 0
    #: This service's external URL (ending in `/`), for documents that name it (Perspective's
    #: discovery document); None: each request's own scheme and host.
    public_url: str | None = None
    # The base spam model file (None: the one shipped in workers/learning/models/).
    spam_model: Path | None = None
    # Per-site learning from labels; labels are kept either way.
    learning: bool = True
    learning_min_labels: int = 10
    learning_max_labels: int = 20_000
    policy: PolicySettings = field(default_factory=PolicySettings)

    def with_overrides(self, **changes: Any) -> Settings:
        """A copy with some fields changed (tests and `moderation up` use this)."""
        return replace(self, **changes)


# --- parsers: each takes the raw string and returns the value or raises ValueError ----------


def _parse_bool(raw: str) -> bool:
    value = raw.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off", ""):
        return False
    raise ValueError("expected true or false")


def _positive(kind: Callable[[str], T]) -> Callable[[str], T]:
    def parse(raw: str) -> T:
        value = kind(raw)
        if value <= 0:  # type: ignore[operator]
            raise ValueError("must be greater than 0")
        return value

    return parse


def _non_negative_int(raw: str) -> int:
    value = int(raw)
    if value < 0:
        raise ValueError("must be 0 or more")
    return value


def _non_negative_float(raw: str) -> float:
    value = float(raw)
    if not value >= 0:  # also refuses NaN
        raise ValueError("must be 0 or more")
    return value


def _intervals(raw: str) -> tuple[int, ...]:
    """`10,60,300` -> seconds between retries; the count is the number of retries."""
    values = tuple(int(part) for part in raw.split(",") if part.strip())
    if any(value < 0 for value in values):
        raise ValueError("expected comma-separated whole seconds, 0 or more")
    return values


def _port(raw: str) -> int:
    value = int(raw)
    if not 0 < value < 65536:
        raise ValueError("must be between 1 and 65535")
    return value


def _public_url(raw: str) -> str:
    """`https://moderation.example.org/path` -> the same ending in `/`."""
    value = raw.strip()
    parts = urlparse(value)
    port = parts.port  # ValueError for a port that is no number up to 65535
    if (
        parts.scheme not in ("http", "https")
        or not parts.hostname
        or "@" in parts.netloc
        or parts.query
        or parts.fragment
        or port == 0
    ):
        raise ValueError("expected the external http(s) URL, such as https://moderation.example")
    return value if value.endswith("/") else value + "/"


def _redis_url(raw: str) -> str:
    return check_url(raw.strip())


def _toxicity_model(raw: str) -> str:
    value = raw.strip()
    if value in ("auto", "lite"):
        return value
    if value.startswith("detoxify:"):
        target = value.removeprefix("detoxify:")
        if target in TOXICITY_VARIANTS or Path(target).is_file():
            return value
        raise ValueError(
            f"unknown Detoxify variant or missing checkpoint file {target!r} "
            f"(variants: {', '.join(TOXICITY_VARIANTS)})"
        )
    raise ValueError("expected auto, lite, detoxify:<variant> or detoxify:<checkpoint path>")


def _directory(raw: str) -> Path:
    path = Path(raw).expanduser()
    if not path.is_dir():
        raise ValueError(f"{raw!r} is not a directory")
    return path


def _writable_directory(raw: str) -> Path:
    """A directory this process can write to, created if missing."""
    path = Path(raw).expanduser()
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ValueError(f"cannot create {raw!r}: {error.strerror}") from None
    if not os.access(path, os.W_OK):
        raise ValueError(f"{raw!r} is not writable")
    return path


def _model_file(raw: str) -> Path:
    path = Path(raw).expanduser()
    if path.suffix != ".npz" or not path.is_file():
        raise ValueError(f"{raw!r} is not an .npz model file")
    return path


def _choice(*choices: str) -> Callable[[str], str]:
    def parse(raw: str) -> str:
        value = raw.strip().lower()
        if value not in choices:
            raise ValueError(f"expected one of {', '.join(choices)}")
        return value

    return parse


def _unit_interval(raw: str) -> float:
    value = float(raw)
    if not 0.0 <= value <= 1.0:
        raise ValueError("must be between 0 and 1")
    return value


def _thresholds(raw: str) -> dict[str, float]:
    """`label=0.8,spam=0.7` -> {"label": 0.8, "spam": 0.7}."""
    result: dict[str, float] = {}
    for part in filter(None, (p.strip() for p in raw.split(","))):
        label, sep, number = part.partition("=")
        if not sep or not label.strip():
            raise ValueError(f"expected label=number pairs separated by commas, got {part!r}")
        result[label.strip()] = _unit_interval(number)
    return result


def _rate_limit(raw: str) -> str | None:
    """`6000 per minute; 100/second` (flask-limiter's notation), or `off`."""
    value = raw.strip()
    if value.lower() in ("off", "none", "0"):
        return None
    try:
        parse_many(value)
    except ValueError:
        example = "'600 per minute' or '10/second; 100/hour'"
        raise ValueError(f"expected a limit such as {example}, or off") from None
    return value


def _languages(raw: str) -> frozenset[str]:
    codes = [code.strip().lower() for code in raw.split(",") if code.strip()]
    bad = [code for code in codes if len(code) != 2 or not code.isascii() or not code.isalpha()]
    if bad or not codes:
        raise ValueError("expected two-letter ISO 639-1 codes separated by commas, e.g. en,fr,de")
    return frozenset(codes)


def _coral_timeout(raw: str) -> float:
    """Seconds, more than 0 and at most 10 (Coral's longest phase timeout is 10,000 ms)."""
    value = float(raw)
    if not 0 < value <= 10:  # also refuses NaN
        raise ValueError("must be more than 0 and at most 10 seconds")
    return value


def _secret(raw: str) -> str:
    if len(raw) < 32:
        raise ValueError(
            "must be at least 32 characters "
            "(try: python -c 'import secrets; print(secrets.token_urlsafe(48))')"
        )
    return raw


# name -> (Settings field, parser); PolicySettings fields are prefixed with "policy.".
_VARIABLES: dict[str, tuple[str, Callable[[str], Any]]] = {
    "REDIS_URL": ("redis_url", _redis_url),
    "HOST": ("host", str),
    "PORT": ("port", _port),
    "MODERATION_SECRET_KEY": ("secret_key", _secret),
    "MODERATION_TOXICITY_MODEL": ("toxicity_model", _toxicity_model),
    "MODERATION_DETOXIFY_CONFIG_DIR": ("detoxify_config_dir", _directory),
    "MODERATION_TOXICITY_LANGUAGES": ("toxicity_languages", _languages),
    "MODERATION_PRECISION": ("precision", _choice(*PRECISIONS)),
    "MODERATION_RUNTIME": ("runtime", _choice(*RUNTIMES)),
    "MODERATION_ENGINE_CACHE_DIR": ("engine_cache_dir", _writable_directory),
    "MODERATION_DURABILITY": ("durability", _choice(*DURABILITY_MODES)),
    "MODERATION_DURABILITY_TIMEOUT": ("durability_timeout", _positive(float)),
    "MODERATION_DURABILITY_REPLICAS": ("durability_replicas", _positive(int)),
    "MODERATION_MAX_TOKENS": ("max_tokens", _positive(int)),
    "MODERATION_TORCH_THREADS": ("torch_threads", _positive(int)),
    "MODERATION_BATCH_SIZE": ("batch_size", _positive(int)),
    "MODERATION_PASS_SIZE": ("pass_size", _positive(int)),
    "MODERATION_BATCH_WAIT": ("batch_wait", _non_negative_float),
    "MODERATION_MODEL_LOAD_TIMEOUT": ("model_load_timeout", _positive(float)),
    "MODERATION_ALLOW_PRIVATE_CALLBACKS": ("allow_private_callbacks", _parse_bool),
    "MODERATION_SECURE_COOKIES": ("secure_cookies", _parse_bool),
    "MODERATION_MAX_BODY_BYTES": ("max_body_bytes", _positive(int)),
    "MODERATION_MAX_BATCH_BYTES": ("max_batch_bytes", _positive(int)),
    "MODERATION_RETENTION_DAYS": ("retention_days", _non_negative_float),
    "MODERATION_MAX_WAIT": ("max_wait_seconds", _positive(float)),
    "MODERATION_CORAL_TIMEOUT": ("coral_timeout", _coral_timeout),
    "MODERATION_WEB_CONCURRENCY": ("web_concurrency", _positive(int)),
    "MODERATION_WEB_THREADS": ("web_threads", _positive(int)),
    "MODERATION_JOB_TIMEOUT": ("job_timeout", _positive(int)),
    "MODERATION_WEBHOOK_TIMEOUT": ("webhook_timeout", _positive(float)),
    "MODERATION_WEBHOOK_RETRY_INTERVALS": ("webhook_retry_intervals", _intervals),
    "MODERATION_JOB_RETRIES": ("job_retries", _non_negative_int),
    "MODERATION_SCORING_RETRY_INTERVALS": ("scoring_retry_intervals", _intervals),
    "MODERATION_SWEEP_AFTER": ("sweep_after", _positive(float)),
    "MODERATION_DUPLICATE_WINDOW": ("duplicate_window", _positive(int)),
    "MODERATION_BURST_WINDOW": ("burst_window", _positive(int)),
    "MODERATION_LOG_LEVEL": ("log_level", _choice("debug", "info", "warning", "error")),
    "MODERATION_LOG_FORMAT": ("log_format", _choice("json", "text")),
    "MODERATION_RATE_LIMIT_SITE": ("rate_limit_site", _rate_limit),
    "MODERATION_RATE_LIMIT_MODERATOR": ("rate_limit_moderator", _rate_limit),
    "MODERATION_RATE_LIMIT_LOGIN": ("rate_limit_login", _rate_limit),
    "MODERATION_LOGIN_FAILURE_LIMIT": ("login_failure_limit", _rate_limit),
    "MODERATION_AUTH_FAILURE_LIMIT": ("auth_failure_limit", _rate_limit),
    "MODERATION_PROXY_HOPS": ("proxy_hops", _non_negative_int),
    "MODERATION_PUBLIC_URL": ("public_url", _public_url),
    "MODERATION_SPAM_MODEL": ("spam_model", _model_file),
    "MODERATION_LEARNING": ("learning", _parse_bool),
    "MODERATION_LEARNING_MIN_LABELS": ("learning_min_labels", _positive(int)),
    "MODERATION_LEARNING_MAX_LABELS": ("learning_max_labels", _positive(int)),
    "MODERATION_HOLD_THRESHOLDS": ("policy.hold", _thresholds),
    "MODERATION_REJECT_THRESHOLDS": ("policy.reject", _thresholds),
    "MODERATION_AUTO_REJECT": ("policy.auto_reject", _parse_bool),
    "MODERATION_MAX_LINKS": ("policy.max_links", _non_negative_int),
    "MODERATION_PREMODERATE": ("policy.premoderate", _parse_bool),
    "MODERATION_UNSCORED_LANGUAGES": (
        "policy.unscored_languages",
        _choice(*UNSCORED_LANGUAGE_ACTIONS),
    ),
    "MODERATION_REPORT_THRESHOLD": ("policy.report_threshold", _non_negative_int),
    "MODERATION_PREMODERATE_NEW_AUTHORS": ("policy.premoderate_new_authors", _non_negative_int),
    "MODERATION_BANNED_AUTHORS": ("policy.banned_authors", _choice(*BANNED_AUTHOR_ACTIONS)),
}

SECRET_KEY_FILE = "var/secret_key"
ENVIRONMENT_VARIABLES: tuple[str, ...] = (*_VARIABLES, "MODERATION_SECRET_KEY_FILE")


def from_env(environ: Mapping[str, str] | None = None) -> Settings:
    """Build Settings from environment variables, refusing bad values by name."""
    env = os.environ if environ is None else environ
    top: dict[str, Any] = {}
    policy: dict[str, Any] = {}
    for variable, (name, parse) in _VARIABLES.items():
        raw = env.get(variable)
        if raw is None or raw == "":
            continue
        try:
            value = parse(raw)
        except (ValueError, TypeError) as error:
            raise SettingsError(variable, f"{raw!r} is not valid: {error}") from None
        if name.startswith("policy."):
            policy[name.removeprefix("policy.")] = value
        else:
            top[name] = value
    if "hold" in policy:
        policy["hold"] = {**DEFAULT_HOLD_THRESHOLDS, **policy["hold"]}
    if "reject" in policy:
        policy["reject"] = {**DEFAULT_REJECT_THRESHOLDS, **policy["reject"]}
    if "log_level" in top:
        top["log_level"] = top["log_level"].upper()
    if "secret_key" not in top:
        top["secret_key"] = _secret_from_file(
            Path(env.get("MODERATION_SECRET_KEY_FILE", SECRET_KEY_FILE))
        )
    return Settings(**top, policy=PolicySettings(**policy))


def _secret_from_file(path: Path) -> str | None:
    """The key `moderation up` keeps under ./var/ for development, when there is one."""
    try:
        raw = path.read_text().strip()
    except FileNotFoundError:
        return None
    except OSError as error:
        raise SettingsError("MODERATION_SECRET_KEY_FILE", f"cannot read {path}: {error}") from None
    try:
        return _secret(raw)
    except ValueError as error:
        raise SettingsError("MODERATION_SECRET_KEY_FILE", f"{path}: {error}") from None
