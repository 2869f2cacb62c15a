"""Structured logging: JSON lines, a request id that follows a request from the API into the RQ
jobs it enqueues, and email and IP addresses redacted unless debugging.

Wiring: `configure_logging` once per process (CLI), `init_request_ids(app)` in the app factory,
and `meta=job_meta()` on every `enqueue_call` so a worker's lines carry the request's id.
"""

from __future__ import annotations

import contextvars
import ipaddress
import json
import logging
import os
import re
import secrets
import sys
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TextIO

from rq import get_current_job

if TYPE_CHECKING:
    from rq.job import Job

REQUEST_ID_HEADER = "X-Request-Id"
#: The id of the request (or the job's originating request) this code runs for, if any.
request_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "request_id", default=None
)

#: Libraries that log a lot at INFO; kept at WARNING unless the level is DEBUG.
NOISY_LOGGERS = ("urllib3", "filelock", "transformers")

_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")

#: Attributes every LogRecord has (or our filters add); anything else came from `extra=`.
_RECORD_ATTRS = frozenset(vars(logging.makeLogRecord({}))) | {
    "message",
    "asctime",
    "taskName",
    "request_id",
    "job_id",
}


def new_request_id() -> str:
    """A fresh random id: 16 hex characters."""
    return secrets.token_hex(8)


def valid_request_id(value: str | None) -> str | None:
    """`value` if it is a safe id (1-64 of A-Z a-z 0-9 . _ -), else None."""
    if isinstance(value, str) and _REQUEST_ID.fullmatch(value):
        return value
    return None


def _job_request_id(job: Job) -> str | None:
    meta = getattr(job, "meta", None)
    return valid_request_id(meta.get("request_id")) if isinstance(meta, Mapping) else None


def current_request_id() -> str | None:
    """The request id in effect: the API request's, else the running RQ job's (from its meta)."""
    request_id = request_id_var.get()
    if request_id is not None:
        return request_id
    job = get_current_job()
    return _job_request_id(job) if job is not None else None


def job_meta() -> dict[str, str]:
    """Meta for `enqueue_call(meta=...)`: the current request id, when there is one."""
    request_id = current_request_id()
    return {"request_id": request_id} if request_id else {}


# --- redaction -------------------------------------------------------------------------------

#: The local part's usual characters; RFC 5322 allows more (/ = ? ...), but those would swallow
#: the query string around an address in a URL.
_EMAIL_LOCAL = r"[\w.%+-]"
_EMAIL = re.compile(
    # the look-behind starts matches only at the beginning of a run: linear time on long words
    rf"(?<!{_EMAIL_LOCAL}){_EMAIL_LOCAL}+(?:@|%40)[\w-]+(?:\.[\w-]+)+"
)
#: Anything made of hex digits, colons and dots with at least two colons; ipaddress decides.
_IPV6_CANDIDATE = re.compile(
    r"(?<![\w:.])(?=[0-9A-Fa-f.]*:[0-9A-Fa-f.]*:)[0-9A-Fa-f:.]{2,}(?:%[\w.-]+)?(?![\w:%])"
)
_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
_IPV4 = re.compile(rf"(?<![\w.]){_OCTET}(?:\.{_OCTET}){{3}}(?!\w|\.[0-9])")


def _is_personal(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """Loopback and unspecified addresses (127.0.0.1, ::1, 0.0.0.0, ::) identify no one."""
    return not (address.is_loopback or address.is_unspecified)


def _redact_ipv6(match: re.Match[str]) -> str:
    text = match.group()
    core = text.rstrip(".")  # a sentence's full stop
    try:
        address = ipaddress.IPv6Address(core)
    except ValueError:
        return text
    return "[ip]" + text[len(core) :] if _is_personal(address) else text


def _redact_ipv4(match: re.Match[str]) -> str:
    text = match.group()
    return "[ip]" if _is_personal(ipaddress.IPv4Address(text)) else text


def redact(text: str) -> str:
    """`text` with email addresses as "[email]" and IPv4/IPv6 addresses as "[ip]"."""
    text = _EMAIL.sub("[email]", text)
    if ":" in text:
        text = _IPV6_CANDIDATE.sub(_redact_ipv6, text)
    return _IPV4.sub(_redact_ipv4, text)


def _redact_value(value: Any, depth: int = 0) -> Any:
    """A redacted copy of an `extra=` value; the caller's objects are left alone."""
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, str):
        return redact(value)
    if depth < 4 and isinstance(value, Mapping):
        return {key: _redact_value(item, depth + 1) for key, item in value.items()}
    if depth < 4 and isinstance(value, list | tuple):
        return [_redact_value(item, depth + 1) for item in value]
    # a formatter would print str(value): redact that instead
    return redact(str(value))


_TRACEBACKS = logging.Formatter()


class RedactingFilter(logging.Filter):
    """Unless `debug`, replaces email and IP addresses in the final message, the traceback and
    `extra=` fields with "[email]" / "[ip]". A safety net: comment text is never logged."""

    def __init__(self, debug: bool = False) -> None:
        super().__init__()
        self.debug = debug

    def filter(self, record: logging.LogRecord) -> bool:
        if self.debug:
            return True
        try:
            message = record.getMessage()
        except Exception as error:  # a broken logging call must not print its raw arguments
            message = f"{record.msg} [log arguments did not format: {type(error).__name__}]"
        record.msg = redact(message)
        record.args = ()
        if record.exc_info and record.exc_info[0] is not None and not record.exc_text:
            record.exc_text = _TRACEBACKS.formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        for key, value in list(vars(record).items()):
            if key not in _RECORD_ATTRS:
                setattr(record, key, _redact_value(value))
        return True


# --- routine lines ---------------------------------------------------------------------------

#: Lines that libraries log at INFO about their own housekeeping (by logger and format string):
#: RQ's registry maintenance every 15 s, its scheduler's lock, its line per job, gunicorn's
#: boots. Logged at DEBUG instead, so that INFO shows what the service itself does.
ROUTINE_LINES: dict[str, frozenset[str]] = {
    "rq.worker": frozenset(
        {
            "Worker %s: cleaning registries for queue: %s",
            "Worker %s: cleaning group registries",
            "Worker %s: subscribing to channel %s",
            "Worker %s: unsubscribing from channel %s",
            "Worker %s: %s: %s",
            "Worker %s: %s: %s (%s)",
            "Worker %s: job %s result is kept for %s seconds",
            "Worker %s: job %s result discarded immediately",
            "Successfully completed job %s in %ss on worker %s",
        }
    ),
    "rq.scheduler": frozenset(
        {
            "Acquired scheduler lock for %s",
            "Scheduler for %s started with PID %s",
            "Scheduler stopping, releasing locks for %s...",
            "Scheduler with PID %d has stopped",
        }
    ),
    "gunicorn.error": frozenset(
        {"Starting gunicorn %s", "Using worker: %s", "Booting worker with pid: %s"}
    ),
}


class RoutineLinesFilter(logging.Filter):
    """Moves the ROUTINE_LINES down to DEBUG: kept when the root logger is at DEBUG, else
    dropped. Must run before any filter that formats the message (it matches `record.msg`)."""

    def filter(self, record: logging.LogRecord) -> bool:
        routine = ROUTINE_LINES.get(record.name)
        if (
            routine is None
            or record.levelno != logging.INFO
            or not isinstance(record.msg, str)
            or record.msg not in routine
        ):
            return True
        record.levelno, record.levelname = logging.DEBUG, "DEBUG"
        return logging.getLogger().isEnabledFor(logging.DEBUG)


# --- context and formatting ------------------------------------------------------------------


class ContextFilter(logging.Filter):
    """Stamps `request_id` (the request's, else the running RQ job's meta) and `job_id` (the
    running RQ job's, else None) on every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        job = get_current_job()
        record.job_id = job.id if job is not None else None
        request_id = request_id_var.get()
        if request_id is None and job is not None:
            request_id = _job_request_id(job)
        record.request_id = request_id
        return True


def _timestamp(created: float) -> str:
    """ISO 8601 in UTC with milliseconds: 2024-05-01T12:00:00.123Z."""
    moment = datetime.fromtimestamp(created, tz=UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _jsonable(value: Any) -> Any:
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError, RecursionError):
        return str(value)
    return value


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, message, request_id and job_id (when
    known), pid, exc (a traceback, when there is one), then `extra=` fields (str() when they
    are not JSON-serialisable; renamed extra_<name> when they clash with a field above)."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": _timestamp(record.created),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key in ("request_id", "job_id"):
            value = getattr(record, key, None)
            if value is not None and value != "-":
                entry[key] = value
        entry["pid"] = record.process if record.process is not None else os.getpid()
        if record.exc_info and record.exc_info[0] is not None and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            entry["exc"] = record.exc_text
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        for key, value in vars(record).items():
            if key not in _RECORD_ATTRS and not key.startswith("_"):
                entry[key if key not in entry else f"extra_{key}"] = _jsonable(value)
        return json.dumps(entry, default=str)


class TextFormatter(logging.Formatter):
    """Human-readable lines: `ts LEVEL logger [request_id=… job=…]: message`."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        return _timestamp(record.created)

    def formatMessage(self, record: logging.LogRecord) -> str:
        context = []
        request_id = getattr(record, "request_id", None)
        job_id = getattr(record, "job_id", None)
        if request_id is not None:
            context.append(f"request_id={request_id}")
        if job_id is not None and job_id != "-":
            context.append(f"job={job_id}")
        where = f" [{' '.join(context)}]" if context else ""
        return f"{record.asctime} {record.levelname} {record.name}{where}: {record.message}"


class _ModerationHandler(logging.StreamHandler[TextIO]):
    """Our root handler; its class tells configure_logging which handler to replace."""


def configure_logging(level: str, *, json_lines: bool = True, stream: TextIO | None = None) -> None:
    """Root logger at `level` with one handler (stderr by default): JSON lines or plain text,
    request/job ids, and redaction unless `level` is DEBUG. Calling again replaces it."""
    numeric = logging.getLevelNamesMapping().get(level.upper())
    if numeric is None:
        raise ValueError(f"unknown log level {level!r}")
    root = logging.getLogger()
    for handler in [h for h in root.handlers if isinstance(h, _ModerationHandler)]:
        root.removeHandler(handler)
        handler.close()
    handler = _ModerationHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(JsonFormatter() if json_lines else TextFormatter())
    handler.addFilter(RoutineLinesFilter())
    handler.addFilter(ContextFilter())
    handler.addFilter(RedactingFilter(debug=numeric <= logging.DEBUG))
    root.addHandler(handler)
    root.setLevel(numeric)
    for name in NOISY_LOGGERS:
        # records propagate to the root handler whatever the root's level: set theirs
        quiet = logging.NOTSET if numeric <= logging.DEBUG else max(logging.WARNING, numeric)
        logging.getLogger(name).setLevel(quiet)
