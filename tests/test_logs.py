"""moderation.core.logs: JSON lines, request ids from the API into RQ jobs, redaction."""

from __future__ import annotations

import io
import json
import logging
import re
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from flask import Flask
from rq import Queue
from rq.job import Job

from moderation.core.logs import (
    NOISY_LOGGERS,
    REQUEST_ID_HEADER,
    ContextFilter,
    JsonFormatter,
    RedactingFilter,
    configure_logging,
    job_meta,
    new_request_id,
    redact,
    request_id_var,
    valid_request_id,
)
from moderation.http.request_ids import init_request_ids
from tests.support import logjob

TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")


class Captured:
    """A logger whose lines go, through our filters and JsonFormatter, into a string."""

    def __init__(self, logger: logging.Logger, stream: io.StringIO) -> None:
        self.logger = logger
        self.stream = stream

    def lines(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.stream.getvalue().splitlines()]

    def one(self) -> dict[str, Any]:
        [line] = self.lines()
        return line


def attach(logger: logging.Logger, *, debug: bool = False) -> tuple[logging.Handler, io.StringIO]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(ContextFilter())
    handler.addFilter(RedactingFilter(debug=debug))
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    return handler, stream


def capture_logger(name: str, *, debug: bool = False) -> Iterator[Captured]:
    logger = logging.getLogger(name)
    logger.propagate = False
    handler, stream = attach(logger, debug=debug)
    try:
        yield Captured(logger, stream)
    finally:
        logger.removeHandler(handler)
        logger.setLevel(logging.NOTSET)
        logger.propagate = True


@pytest.fixture
def captured() -> Iterator[Captured]:
    yield from capture_logger("tests.logs.redacted")


@pytest.fixture
def captured_debug() -> Iterator[Captured]:
    yield from capture_logger("tests.logs.debug", debug=True)


@pytest.fixture
def restore_root_logging() -> Iterator[None]:
    """Undo configure_logging: the root's handlers and level, the noisy loggers' levels."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    noisy = {name: logging.getLogger(name).level for name in NOISY_LOGGERS}
    yield
    for handler in root.handlers:
        if handler not in handlers:
            handler.close()
    root.handlers[:] = handlers
    root.setLevel(level)
    for name, noisy_level in noisy.items():
        logging.getLogger(name).setLevel(noisy_level)


@pytest.fixture
def request_id() -> Iterator[str]:
    token = request_id_var.set("req-fixed.1")
    yield "req-fixed.1"
    request_id_var.reset(token)


# --- request ids -----------------------------------------------------------------------------


def test_new_request_ids_are_random_hex_and_valid() -> None:
    first, second = new_request_id(), new_request_id()
    assert re.fullmatch(r"[0-9a-f]{16}", first)
    assert first != second
    assert valid_request_id(first) == first


@pytest.mark.parametrize("good", ["a", "A-1_b.c", "x" * 64, "3f2a9c1e-77b0-4a51-9d1c-0d9a1c0e5b6f"])
def test_valid_request_id_accepts_safe_ids(good: str) -> None:
    assert valid_request_id(good) == good


@pytest.mark.parametrize(
    "bad",
    [None, "", "x" * 65, "has space", "line\nbreak", "trailing\n", 'quote"', "ünï", "a/b", "١٢"],
)
def test_valid_request_id_refuses_anything_else(bad: str | None) -> None:
    assert valid_request_id(bad) is None


# --- JsonFormatter ---------------------------------------------------------------------------


class Unserialisable:
    def __str__(self) -> str:
        return "<unserialisable>"


def test_json_lines_carry_the_fields(captured: Captured, request_id: str) -> None:
    captured.logger.warning(
        "scored %d comments\nsecond line",
        3,
        extra={"site": "news", "scores": {"toxicity": 0.5}, "thing": Unserialisable()},
    )
    text = captured.stream.getvalue()
    assert text.count("\n") == 1  # one line whatever the message holds
    line = json.loads(text)
    assert list(line)[:6] == ["ts", "level", "logger", "message", "request_id", "pid"]
    assert TIMESTAMP.fullmatch(line["ts"])
    assert line["level"] == "WARNING"
    assert line["logger"] == "tests.logs.redacted"
    assert line["message"] == "scored 3 comments\nsecond line"
    assert line["request_id"] == request_id
    assert "job_id" not in line
    assert isinstance(line["pid"], int)
    assert "exc" not in line
    assert line["site"] == "news"
    assert line["scores"] == {"toxicity": 0.5}
    assert line["thing"] == "<unserialisable>"


def test_json_lines_include_the_traceback(captured: Captured) -> None:
    try:
        1 / 0  # noqa: B018
    except ZeroDivisionError:
        captured.logger.exception("it broke")
    line = captured.one()
    assert line["level"] == "ERROR"
    assert line["message"] == "it broke"
    assert line["exc"].startswith("Traceback (most recent call last):")
    assert "ZeroDivisionError: division by zero" in line["exc"]


def test_json_formatter_copes_with_odd_extras() -> None:
    record = logging.makeLogRecord(
        {"name": "x", "levelname": "INFO", "msg": "m", "args": ()}
        | {"nan": float("nan"), "ids": {1, 2}, "level": "clash", "none": None}
    )
    line = json.loads(JsonFormatter().format(record))
    assert line["nan"] == "nan"  # NaN is not JSON
    assert line["ids"] == "{1, 2}"
    assert line["level"] == "INFO"
    assert line["extra_level"] == "clash"
    assert line["none"] is None
    assert "request_id" not in line  # no ContextFilter ran: nothing known


def test_exc_info_true_outside_an_exception_adds_no_traceback(captured: Captured) -> None:
    captured.logger.error("no exception here", exc_info=True)
    assert "exc" not in captured.one()


# --- redaction -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("from ann.author+news@example.co.uk today", "from [email] today"),
        ("mailto:Bob_B@mail.example.org.", "mailto:[email]."),
        ("'bob@example.org' <carl@example.org>", "'[email]' <[email]>"),
        ("next=/a?email=ann%40example.org&x=1", "next=/a?email=[email]&x=1"),
        ("client 203.0.113.7 said", "client [ip] said"),
        ("peer 198.51.100.23:443, then 192.0.2.1.", "peer [ip]:443, then [ip]."),
        ("v6 2001:db8::8a2e:370:7334 here", "v6 [ip] here"),
        ("full 2001:0db8:0000:0000:0000:ff00:0042:8329", "full [ip]"),
        ("bracketed [2001:db8::1]:8080", "bracketed [[ip]]:8080"),
        ("scoped fe80::1ff:fe23:4567:890a%eth0 up", "scoped [ip] up"),
        ("mapped ::ffff:192.0.2.128 too", "mapped [ip] too"),
        ("upper 2001:DB8::1.", "upper [ip]."),
    ],
)
def test_redact_replaces_emails_and_addresses(raw: str, clean: str) -> None:
    assert redact(raw) == clean


@pytest.mark.parametrize(
    "kept",
    [
        "at 12:30:45 on 2024-05-01T12:00:00.123Z",
        "rq 2.8.0 and python 3.11.4, job 1.2.3.4.5",
        "300.1.2.3 is no address",
        "Class::method and std::string, a@b",
        "mac 00:1a:2b:3c:4d:5e",
        "listening on 0.0.0.0:8000 and [::]:8000; redis at 127.0.0.1 or ::1",
        "hash deadbeefcafe, ratio 0.93",
    ],
)
def test_redact_keeps_what_is_not_personal(kept: str) -> None:
    assert redact(kept) == kept


def test_redacting_filter_cleans_messages_args_extras_and_tracebacks(captured: Captured) -> None:
    try:
        raise ValueError("bad address carol@example.net")
    except ValueError:
        captured.logger.exception(
            "login by %s from %s (%s)",
            "dave@example.com",
            "203.0.113.9",
            "2001:db8::42",
            extra={"author": "erin@example.org", "peers": ["198.51.100.1", 7]},
        )
    line = captured.one()
    assert line["message"] == "login by [email] from [ip] ([ip])"
    assert line["author"] == "[email]"
    assert line["peers"] == ["[ip]", 7]
    assert "ValueError: bad address [email]" in line["exc"]
    assert "@" not in captured.stream.getvalue()


def test_redacting_filter_leaves_a_plain_formatted_record() -> None:
    record = logging.makeLogRecord({"msg": "from %s", "args": ("203.0.113.9",)})
    assert RedactingFilter().filter(record)
    assert (record.msg, record.args) == ("from [ip]", ())
    assert record.getMessage() == "from [ip]"


def test_redacting_filter_survives_a_broken_logging_call(captured: Captured) -> None:
    captured.logger.info("count %d for %s", "not a number", "frank@example.org")
    line = captured.one()
    assert line["message"] == "count %d for %s [log arguments did not format: TypeError]"
    assert "frank" not in captured.stream.getvalue()


def test_debug_keeps_personal_data(captured_debug: Captured) -> None:
    captured_debug.logger.debug("by %s from %s", "gina@example.org", "203.0.113.5")
    assert captured_debug.one()["message"] == "by gina@example.org from 203.0.113.5"


def test_redaction_does_not_touch_the_callers_objects(captured: Captured) -> None:
    peers = ["198.51.100.1"]
    captured.logger.info("peers", extra={"peers": peers})
    assert peers == ["198.51.100.1"]
    assert captured.one()["peers"] == ["[ip]"]


# --- ContextFilter ---------------------------------------------------------------------------


def test_context_filter_reads_the_request_id() -> None:
    record = logging.makeLogRecord({"msg": "m"})
    ContextFilter().filter(record)
    assert (record.request_id, record.job_id) == (None, None)  # type: ignore[attr-defined]
    token = request_id_var.set("abc123")
    try:
        ContextFilter().filter(record)
    finally:
        request_id_var.reset(token)
    assert (record.request_id, record.job_id) == ("abc123", None)  # type: ignore[attr-defined]


def test_job_meta_carries_the_current_request_id(request_id: str) -> None:
    assert job_meta() == {"request_id": request_id}


def test_job_meta_is_empty_without_a_request() -> None:
    assert job_meta() == {}


@pytest.fixture
def job_log() -> Iterator[Captured]:
    yield from capture_logger(logjob.__name__)


def test_a_jobs_lines_carry_its_id_and_its_requests_id(
    redis_client: redis.Redis, job_log: Captured
) -> None:
    token = request_id_var.set("req-from-api")
    try:
        meta = job_meta()  # what the API passes to enqueue_call
    finally:
        request_id_var.reset(token)  # the job runs here, synchronously: only its meta can tell
    queue = Queue("logs-test", connection=redis_client, is_async=False)
    job = queue.enqueue_call(
        f"{logjob.__name__}.{logjob.log_and_report.__name__}", args=("hello",), meta=meta
    )

    assert job.is_finished, job.latest_result()
    assert Job.fetch(job.id, connection=redis_client).meta == {"request_id": "req-from-api"}
    line = job_log.one()
    assert line["message"] == "job says hello"
    assert line["job_id"] == job.id
    assert line["request_id"] == "req-from-api"
    # a job enqueued from inside this one would inherit the id
    assert job.return_value() == {"request_id": "req-from-api"}


def test_a_job_without_a_request_has_only_its_id(
    redis_client: redis.Redis, job_log: Captured
) -> None:
    queue = Queue("logs-test", connection=redis_client, is_async=False)
    job = queue.enqueue_call(
        f"{logjob.__name__}.{logjob.log_and_report.__name__}",
        args=("alone",),
        meta={"request_id": "forged\nline"},  # junk in meta is ignored, not logged
    )
    assert job.is_finished
    line = job_log.one()
    assert line["job_id"] == job.id
    assert "request_id" not in line
    assert job.return_value() == {}


# --- Flask -----------------------------------------------------------------------------------


@pytest.fixture
def request_log() -> Iterator[Captured]:
    yield from capture_logger("tests.logs.flask")


@pytest.fixture
def flask_app(request_log: Captured) -> Flask:
    app = Flask("logs-test")

    @app.before_request
    def registered_before_ours() -> None:
        request_log.logger.info("before")

    init_request_ids(app)

    @app.get("/")
    def index() -> dict[str, str | None]:
        request_log.logger.info("inside")
        return {"seen": request_id_var.get()}

    return app


def test_a_valid_incoming_request_id_is_kept_and_echoed(
    flask_app: Flask, request_log: Captured
) -> None:
    response = flask_app.test_client().get("/", headers={REQUEST_ID_HEADER: "client-id.42"})
    assert response.headers[REQUEST_ID_HEADER] == "client-id.42"
    assert response.get_json() == {"seen": "client-id.42"}
    assert [line["request_id"] for line in request_log.lines()] == ["client-id.42"] * 2
    assert request_id_var.get() is None  # reset after the request


@pytest.mark.parametrize("bad", ["x" * 200, "two words", "id\nERROR forged line", ""])
def test_an_invalid_incoming_request_id_is_replaced(
    flask_app: Flask, request_log: Captured, bad: str
) -> None:
    response = flask_app.test_client().get("/", environ_overrides={"HTTP_X_REQUEST_ID": bad})
    request_id = response.headers[REQUEST_ID_HEADER]
    assert request_id != bad
    assert valid_request_id(request_id) == request_id
    assert response.get_json() == {"seen": request_id}
    assert [line["request_id"] for line in request_log.lines()] == [request_id] * 2
    assert "forged" not in request_log.stream.getvalue()


def test_a_request_without_an_id_gets_a_new_one_each_time(
    flask_app: Flask, request_log: Captured
) -> None:
    client = flask_app.test_client()
    first = client.get("/").headers[REQUEST_ID_HEADER]
    second = client.get("/").headers[REQUEST_ID_HEADER]
    assert re.fullmatch(r"[0-9a-f]{16}", first)
    assert first != second
    assert [line["request_id"] for line in request_log.lines()] == [first] * 2 + [second] * 2
    assert request_id_var.get() is None


def test_error_responses_carry_the_request_id_too(request_log: Captured) -> None:
    app = Flask("logs-test")
    init_request_ids(app)

    @app.get("/boom")
    def boom() -> str:
        raise RuntimeError("boom")

    response = app.test_client().get("/boom", headers={REQUEST_ID_HEADER: "err-1"})
    assert response.status_code == 500
    assert response.headers[REQUEST_ID_HEADER] == "err-1"
    assert request_id_var.get() is None


# --- configure_logging -----------------------------------------------------------------------


@pytest.mark.usefixtures("restore_root_logging")
def test_configure_logging_twice_keeps_one_handler() -> None:
    root = logging.getLogger()
    before = len(root.handlers)
    first, second = io.StringIO(), io.StringIO()
    configure_logging("INFO", stream=first)
    configure_logging("INFO", stream=second)
    assert len(root.handlers) == before + 1
    assert root.level == logging.INFO

    logging.getLogger("tests.logs.configured").info("from %s", "hana@example.org")
    assert first.getvalue() == ""
    line = json.loads(second.getvalue())
    assert line["message"] == "from [email]"
    assert line["logger"] == "tests.logs.configured"


@pytest.mark.usefixtures("restore_root_logging")
def test_configure_logging_quiets_noisy_libraries_unless_debugging() -> None:
    stream = io.StringIO()
    configure_logging("INFO", stream=stream)
    logging.getLogger("urllib3.connectionpool").info("Starting new HTTPS connection")
    logging.getLogger("filelock").debug("Lock acquired")
    logging.getLogger("urllib3").warning("a real warning")
    assert [json.loads(line)["message"] for line in stream.getvalue().splitlines()] == [
        "a real warning"
    ]
    assert all(logging.getLogger(name).level == logging.WARNING for name in NOISY_LOGGERS)

    configure_logging("ERROR", stream=stream)
    assert logging.getLogger("urllib3").level == logging.ERROR

    configure_logging("DEBUG", stream=stream)
    assert all(logging.getLogger(name).level == logging.NOTSET for name in NOISY_LOGGERS)


@pytest.mark.usefixtures("restore_root_logging")
def test_configure_logging_at_debug_does_not_redact() -> None:
    stream = io.StringIO()
    configure_logging("debug", stream=stream)
    logging.getLogger("tests.logs.configured").debug("from %s", "203.0.113.8")
    assert json.loads(stream.getvalue())["message"] == "from 203.0.113.8"


@pytest.mark.usefixtures("restore_root_logging")
def test_configure_logging_text_lines(request_id: str) -> None:
    stream = io.StringIO()
    configure_logging("INFO", json_lines=False, stream=stream)
    logging.getLogger("tests.logs.configured").info("by %s", "ivan@example.org")
    assert re.fullmatch(
        r"\S+Z INFO tests\.logs\.configured \[request_id=req-fixed\.1\]: by \[email\]\n",
        stream.getvalue(),
    )


@pytest.mark.usefixtures("restore_root_logging")
def test_configure_logging_writes_to_stderr_by_default(
    capsys: pytest.CaptureFixture[str],
) -> None:
    configure_logging("WARNING")
    logging.getLogger("tests.logs.configured").warning("to stderr")
    assert json.loads(capsys.readouterr().err)["message"] == "to stderr"


def test_configure_logging_refuses_an_unknown_level() -> None:
    with pytest.raises(ValueError, match="unknown log level"):
        configure_logging("LOUD")


@pytest.mark.usefixtures("restore_root_logging")
def test_libraries_routine_lines_are_debug_and_warnings_stay() -> None:
    stream = io.StringIO()
    configure_logging("INFO", json_lines=False, stream=stream)
    rq_worker = logging.getLogger("rq.worker")
    rq_worker.info("Worker %s: cleaning registries for queue: %s", "w-1", "moderation-scoring")
    logging.getLogger("rq.scheduler").info("Acquired scheduler lock for %s", "moderation-scoring")
    rq_worker.info("Worker %s: started with PID %d, version %s", "w-1", 7, "3.0.0")
    rq_worker.warning("Worker %s: cleaning registries for queue: %s", "w-1", "not routine")
    logging.getLogger("workers.scoring.toxicity").warning("TOXICITY MODEL FALLBACK: lite")
    messages = [line.split(": ", 1)[1] for line in stream.getvalue().splitlines()]
    assert messages == [
        "Worker w-1: started with PID 7, version 3.0.0",
        "Worker w-1: cleaning registries for queue: not routine",
        "TOXICITY MODEL FALLBACK: lite",
    ]

    debug = io.StringIO()
    configure_logging("DEBUG", stream=debug)
    rq_worker.info("Worker %s: cleaning registries for queue: %s", "w-1", "moderation-scoring")
    line = json.loads(debug.getvalue())
    assert (line["level"], line["logger"]) == ("DEBUG", "rq.worker")
    assert line["message"] == "Worker w-1: cleaning registries for queue: moderation-scoring"


@pytest.mark.usefixtures("restore_root_logging")
def test_gunicorns_lines_come_out_as_the_process_logs_them() -> None:
    from gunicorn.config import Config

    from moderation.ops.server import ProcessLogging

    stream = io.StringIO()
    configure_logging("INFO", stream=stream)
    config = Config()
    config.set("errorlog", "-")
    config.set("loglevel", "info")
    gunicorn_log = ProcessLogging(config)
    try:
        gunicorn_log.info("Booting worker with pid: %s", 41)
        gunicorn_log.info("Listening at: %s (%s)", "http://127.0.0.1:8000", 40)
        gunicorn_log.error("Worker (pid:%s) was sent SIGKILL!", 41)
    finally:
        gunicorn_log.error_log.propagate = False
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [(line["level"], line["logger"], line["message"]) for line in lines] == [
        ("INFO", "gunicorn.error", "Listening at: http://127.0.0.1:8000 (40)"),
        ("ERROR", "gunicorn.error", "Worker (pid:41) was sent SIGKILL!"),
    ]
