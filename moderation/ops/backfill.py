"""Backfill: move a site's archived comments (JSON Lines or CSV) through moderation.

Comments go in batches either straight into Redis (as the API stores them: one scoring job per
new comment) or over HTTP through the batch endpoint. Each comment's decision is then written to
a JSON Lines file. A small state file next to it counts the input records already submitted, so
running the same command again continues where an interrupted run stopped; the API is
idempotent on the comment id, and the output never gets a line twice.

Nothing here logs or prints comment text: only ids, line numbers, counts and error messages.
"""

from __future__ import annotations

import csv
import hashlib
import itertools
import json
import os
import sys
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Protocol, TextIO

import click
import redis
from tqdm import tqdm

from moderation.client import ModerationClient, ModerationError
from moderation.core.redis_connections import connect
from moderation.core.settings import Settings
from moderation.http.intake import accept_batch
from moderation.storage.comment_store import CommentStore
from moderation.storage.durability import Durability
from moderation.storage.job_queues import ScoringEnqueuer
from moderation.storage.site_store import SiteStore

JSON = dict[str, Any]
BATCH_LIMIT = 100
FORMATS = {".jsonl": "jsonl", ".ndjson": "jsonl", ".csv": "csv"}
#: The CLI's `--X-field` options and where each puts its source field in the comment.
FIELD_OPTIONS = {
    "id_field": "id",
    "content_field": "content",
    "author_id_field": "author.id",
    "author_name_field": "author.name",
    "author_email_field": "author.email",
    "author_url_field": "author.url",
    "author_ip_field": "author.ip",
    "post_id_field": "context.post_id",
    "permalink_field": "context.permalink",
    "parent_id_field": "context.parent_id",
}
#: Bytes of the input hashed to recognise it when resuming.
HEAD_BYTES = 64 * 1024
#: Longest single wait for one decision (the API holds a request at most 10 s).
WAIT_CHUNK = 10.0
INTERRUPTED = 130


class BackfillError(Exception):
    """A problem that stops the backfill; the message is safe to print."""


# --- reading the input ---------------------------------------------------------------------


@dataclass(frozen=True)
class Record:
    """One input record and the line it starts on; `data` is None when it is not an object."""

    line: int
    data: JSON | None


def detect_format(path: Path, given: str | None) -> str:
    if given:
        return given
    try:
        return FORMATS[path.suffix.lower()]
    except KeyError:
        raise BackfillError(
            f"cannot tell the format of {path.name} from its extension: pass --format jsonl|csv"
        ) from None


def read_records(path: Path, input_format: str) -> Iterator[Record]:
    """The input's records in order (blank lines skipped). Undecodable bytes become lone
    surrogates, which validation then reports as invalid rather than stopping the run."""
    newline = "" if input_format == "csv" else None
    with path.open(encoding="utf-8-sig", errors="surrogateescape", newline=newline) as handle:
        try:
            yield from _csv_records(handle) if input_format == "csv" else _jsonl_records(handle)
        except csv.Error as error:
            raise BackfillError(f"{path.name} is not readable CSV: {error}") from None


def _jsonl_records(handle: TextIO) -> Iterator[Record]:
    for number, line in enumerate(handle, start=1):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
        except ValueError:
            data = None
        yield Record(number, data if isinstance(data, dict) else None)


def _csv_records(handle: TextIO) -> Iterator[Record]:
    reader = csv.reader(handle)
    header = [name.strip() for name in next(reader, [])]
    previous = reader.line_num
    for row in reader:
        line, previous = previous + 1, reader.line_num
        if any(cell.strip() for cell in row):
            yield Record(line, dict(zip(header, row, strict=False)))


def _lookup(data: JSON, source: str) -> Any:
    """`data[source]`, or a dotted path into nested objects ("user.id")."""
    if source in data:
        return data[source]
    node: Any = data
    for part in source.split("."):
        if not isinstance(node, dict):
            return None
        node = node.get(part)
    return node


def to_comment(data: JSON, mapping: dict[str, str]) -> JSON:
    """The API comment for one record: its own author/context/honeypot when it has them, and
    its callback_url and store as they are, for the API to accept or refuse (a comment object
    as for POST /v1/comments), overlaid with the mapped fields. Other fields are ignored;
    numbers become strings; empty values are left out."""
    comment: JSON = {}
    for key, kind in (("author", dict), ("context", dict), ("honeypot", str)):
        if isinstance(data.get(key), kind):
            comment[key] = data[key]
    for key in ("callback_url", "store"):
        if key in data and data[key] != "":
            comment[key] = data[key]
    for target, source in mapping.items():
        value = _lookup(data, source)
        if isinstance(value, int | float) and not isinstance(value, bool):
            value = str(value)
        if value is None or value == "":
            continue
        section, _, name = target.rpartition(".")
        if section:
            comment[section] = {**comment.get(section, {}), name: value}
        else:
            comment[name] = value
    return comment


# --- where comments go ---------------------------------------------------------------------


class Target(Protocol):
    """Where comments go: straight into Redis, or the batch endpoint over HTTP."""

    name: str

    def submit(self, comments: list[JSON]) -> list[JSON]:
        """One result per comment, in order, as the batch endpoint gives them."""
        ...

    def record(self, comment_id: str, timeout: float) -> JSON | None:
        """The comment's record once decided or after `timeout` s; None if there is none."""
        ...

    def close(self) -> None: ...


class DirectTarget:
    """Stores comments and their scoring jobs in Redis through the batch endpoint's own
    function (`moderation.http.intake.accept_batch`): what it refuses, this refuses."""

    def __init__(self, settings: Settings, site: str) -> None:
        self.connection = connect(settings.redis_url)
        self.site = site
        self.name = f"redis site {site}"
        self.store = CommentStore(
            self.connection,
            track_retention=settings.retention_days > 0,
            durability=Durability.from_settings(settings),
        )
        self.enqueue = ScoringEnqueuer(self.connection, settings)
        try:
            known = SiteStore(self.connection, None).get(site) is not None
        except redis.RedisError as error:
            raise BackfillError(f"Redis is unavailable: {error}") from None
        if not known:
            raise BackfillError(f"no site {site!r} (create it with 'moderation sites create')")

    def submit(self, comments: list[JSON]) -> list[JSON]:
        try:
            return accept_batch(self.store, self.enqueue, self.site, comments)
        except redis.RedisError as error:
            raise BackfillError(f"Redis is unavailable: {error}") from None

    def record(self, comment_id: str, timeout: float) -> JSON | None:
        try:
            if timeout > 0:
                comment = self.store.wait_for_decision(self.site, comment_id, timeout)
            else:
                comment = self.store.get(self.site, comment_id)
        except redis.RedisError as error:
            raise BackfillError(f"Redis is unavailable: {error}") from None
        return comment.record() if comment else None

    def close(self) -> None:
        self.connection.close()


class HttpTarget:
    """Submits through the service's batch endpoint with a site's API key."""

    def __init__(self, api_url: str, api_key: str) -> None:
        self.client = ModerationClient(api_url, api_key, timeout=60.0)
        self.name = self.client.base_url

    def submit(self, comments: list[JSON]) -> list[JSON]:
        try:
            results = self.client.batch(comments)
        except ModerationError as error:
            raise BackfillError(f"the API refused a batch: {error}") from None
        if len(results) != len(comments):
            raise BackfillError(f"the API answered {len(results)} results for {len(comments)}")
        return results

    def record(self, comment_id: str, timeout: float) -> JSON | None:
        try:
            if timeout > 0:
                try:
                    return self.client.wait_for_decision(comment_id, timeout)
                except TimeoutError:
                    pass
            return self.client.get(comment_id)
        except ModerationError as error:
            if error.status == 404:
                return None
            raise BackfillError(f"cannot read comment {comment_id!r}: {error}") from None

    def close(self) -> None:
        self.client.close()


# --- output and state ----------------------------------------------------------------------


class Output:
    """The decisions file: one line per comment id, one per invalid record (by line number).

    Opening it keeps the final lines of earlier runs and drops their "pending" lines (and any
    line cut short by an interruption), so every id ends up in it exactly once.
    """

    def __init__(self, path: Path, restart: bool) -> None:
        self.path = path
        self.ids: set[str] = set()
        self.invalid_lines: set[int] = set()
        self.decided = 0
        temporary = path.with_name(path.name + ".tmp")
        with temporary.open("w", encoding="utf-8") as kept:
            if path.exists() and not restart:
                with path.open(encoding="utf-8", errors="replace") as previous:
                    for line in previous:
                        if self._remember(line):
                            kept.write(line if line.endswith("\n") else line + "\n")
        os.replace(temporary, path)
        self.handle = path.open("a", encoding="utf-8")

    def _remember(self, line: str) -> bool:
        """Note a final line of an earlier run; False for pending or unreadable lines."""
        try:
            entry = json.loads(line)
        except ValueError:
            return False
        if not isinstance(entry, dict) or entry.get("status") == "pending":
            return False
        if entry.get("status") == "invalid" and isinstance(entry.get("line"), int):
            self.invalid_lines.add(entry["line"])
        elif isinstance(entry.get("id"), str):
            self.ids.add(entry["id"])
            self.decided += entry.get("decision") is not None
        else:
            return False
        return True

    def write_record(self, comment_id: str, record: JSON | None) -> None:
        """The comment's final line (status "missing" when the service has no such comment)."""
        status = record["status"] if record else "missing"
        decision = record.get("decision") if record else None
        self._write({"id": comment_id, "status": status, "decision": decision})
        self.ids.add(comment_id)
        self.decided += decision is not None

    def write_pending(self, comment_id: str) -> None:
        self._write({"id": comment_id, "status": "pending", "decision": None})

    def write_invalid(self, line: int, comment_id: Any, error: JSON) -> None:
        """The record's line number and error; its id only if it looks like one, never text."""
        safe_id = comment_id if isinstance(comment_id, str) and len(comment_id) <= 128 else None
        error = {key: error[key] for key in ("code", "message", "fields") if key in error}
        self._write({"line": line, "id": safe_id, "status": "invalid", "error": error})
        self.invalid_lines.add(line)

    def _write(self, entry: JSON) -> None:
        self.handle.write(json.dumps(entry) + "\n")

    def flush(self) -> None:
        self.handle.flush()

    def close(self) -> None:
        self.handle.close()


@dataclass
class Counts:
    """Input records submitted so far (invalid ones included), and what became of them."""

    records: int = 0
    accepted: int = 0
    duplicates: int = 0
    invalid: int = 0


def state_path(output: Path) -> Path:
    return output.with_name(output.name + ".state.json")


def identify(path: Path, target: Target, mapping: dict[str, str]) -> JSON:
    """What a state file must match to be resumed: the input (path, size, first bytes), how
    its fields are mapped and where its comments go."""
    with path.open("rb") as handle:
        head = hashlib.sha256(handle.read(HEAD_BYTES)).hexdigest()
    return {
        "input": str(path.resolve()),
        "size": path.stat().st_size,
        "head_sha256": head,
        "mapping": mapping,
        "target": target.name,
    }


def load_state(path: Path, identity: JSON) -> Counts:
    """The counts of an earlier run of the same input and target; zeros when there is none."""
    try:
        state = json.loads(path.read_text())
    except FileNotFoundError:
        return Counts()
    except ValueError:
        raise BackfillError(f"{path} is not a state file: pass --restart") from None
    differ = [key for key, value in identity.items() if state.get(key) != value]
    if differ:
        raise BackfillError(
            f"{path} belongs to another run ({', '.join(differ)} differ): pass --restart "
            "to start over, or choose another --output"
        )
    return Counts(**{item.name: int(state.get(item.name, 0)) for item in fields(Counts)})


def save_state(path: Path, identity: JSON, counts: Counts) -> None:
    """Write the state atomically: a reader sees the old file or the new one, never half."""
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(json.dumps({**identity, **asdict(counts)}))
    os.replace(temporary, path)


# --- running -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Options:
    path: Path
    output: Path
    input_format: str
    mapping: dict[str, str]
    batch_size: int = BATCH_LIMIT
    rate: float | None = None
    wait_timeout: float = 300.0
    restart: bool = False
    progress: bool = False


@dataclass(frozen=True)
class Summary:
    counts: Counts
    decided: int
    pending: int
    interrupted: bool

    def line(self) -> str:
        c = self.counts
        text = (
            f"{c.records} records: {c.accepted} accepted, {c.duplicates} duplicates, "
            f"{c.invalid} invalid, {self.decided} decided, {self.pending} pending"
        )
        return text + (
            " (interrupted: run the same command again to resume)" if self.interrupted else ""
        )


def batches(records: Iterator[Record], size: int) -> Iterator[list[Record]]:
    while batch := list(itertools.islice(records, size)):
        yield batch


def progress_bar(options: Options, **kwargs: Any) -> tqdm:
    return tqdm(file=sys.stderr, disable=not options.progress, dynamic_ncols=True, **kwargs)


class Backfill:
    """One run: submit what earlier runs did not, then collect decisions until the deadline."""

    def __init__(self, target: Target, options: Options) -> None:
        self.target = target
        self.options = options
        self.state_path = state_path(options.output)
        self.identity = identify(options.path, target, options.mapping)
        self.counts = Counts() if options.restart else load_state(self.state_path, self.identity)
        self.output = Output(options.output, options.restart)
        #: Ids submitted but with no final line yet, in submission order.
        self.outstanding: dict[str, None] = {}

    def run(self) -> Summary:
        """Run to the end, or until Ctrl-C (the state is saved after every batch)."""
        interrupted = False
        try:
            self.submit_all()
            self.collect_decisions()
        except KeyboardInterrupt:
            interrupted = True
        finally:
            self.output.close()
        return Summary(self.counts, self.output.decided, len(self.outstanding), interrupted)

    def submit_all(self) -> None:
        options = self.options
        records = read_records(options.path, options.input_format)
        for record in itertools.islice(records, self.counts.records):
            self.remember_submitted(record)
        total = None
        if options.progress:
            total = sum(1 for _ in read_records(options.path, options.input_format))
        started, submitted = time.monotonic(), 0
        with progress_bar(options, total=total, initial=self.counts.records, unit="comment") as bar:
            for batch in batches(records, options.batch_size):
                self.submit(batch)
                save_state(self.state_path, self.identity, self.counts)
                bar.update(len(batch))
                submitted += len(batch)
                if options.rate:
                    time.sleep(max(0.0, started + submitted / options.rate - time.monotonic()))

    def remember_submitted(self, record: Record) -> None:
        """A record an earlier run submitted: wait for its decision unless it has its line."""
        if record.data is None or record.line in self.output.invalid_lines:
            return
        comment_id = to_comment(record.data, self.options.mapping).get("id")
        if isinstance(comment_id, str) and comment_id not in self.output.ids:
            self.outstanding[comment_id] = None

    def submit(self, batch: list[Record]) -> None:
        """Submit one batch and note the results; invalid records get their output line."""
        comments = {
            record.line: to_comment(record.data, self.options.mapping)
            for record in batch
            if record.data is not None
        }
        answers = self.target.submit(list(comments.values())) if comments else []
        results = dict(zip(comments, answers, strict=True))
        for record in batch:
            result = results.get(record.line) or {
                "id": None,
                "status": "invalid",
                "error": {"code": "malformed_record", "message": "Not a JSON object."},
            }
            if result.get("status") in ("accepted", "duplicate"):
                if result["status"] == "accepted":
                    self.counts.accepted += 1
                else:
                    self.counts.duplicates += 1
                if result["id"] not in self.output.ids:
                    self.outstanding[result["id"]] = None
            else:
                self.counts.invalid += 1
                if record.line not in self.output.invalid_lines:
                    self.output.write_invalid(
                        record.line, result.get("id"), result.get("error", {})
                    )
        self.output.flush()
        self.counts.records += len(batch)

    def collect_decisions(self) -> None:
        """Write each outstanding comment's decision as it comes, until `wait_timeout` passes;
        the ones still undecided then are written as pending."""
        deadline = time.monotonic() + self.options.wait_timeout
        with progress_bar(self.options, total=len(self.outstanding), unit="decision") as bar:
            for comment_id in list(self.outstanding):
                record = self.await_record(comment_id, deadline)
                if record is None or record.get("decision") is not None:
                    self.output.write_record(comment_id, record)
                    self.output.flush()
                    del self.outstanding[comment_id]
                bar.update()
        for comment_id in self.outstanding:
            self.output.write_pending(comment_id)

    def await_record(self, comment_id: str, deadline: float) -> JSON | None:
        while True:
            remaining = max(0.0, deadline - time.monotonic())
            record = self.target.record(comment_id, min(remaining, WAIT_CHUNK))
            if record is None or record.get("decision") is not None or remaining <= WAIT_CHUNK:
                return record


def make_target(
    settings: Settings, site: str | None, api_url: str | None, api_key: str | None
) -> Target:
    """Over HTTP with --api-url and --api-key, else straight into Redis for --site."""
    if api_url:
        if not api_key:
            raise BackfillError("--api-url needs --api-key (or MODERATION_API_KEY)")
        return HttpTarget(api_url, api_key)
    if not site:
        raise BackfillError("pass --site (into Redis) or --api-url and --api-key (over HTTP)")
    return DirectTarget(settings, site)


def run_command(
    settings: Settings,
    path: Path,
    *,
    site: str | None,
    api_url: str | None,
    api_key: str | None,
    input_format: str | None,
    output: Path | None,
    fields_by_option: dict[str, str | None],
    batch_size: int,
    rate: float | None,
    wait_timeout: float,
    restart: bool,
    quiet: bool,
) -> int:
    """`moderation backfill`: the exit code (0, or 130 when interrupted)."""
    output = output or path.with_suffix(".decisions.jsonl")
    if output.resolve() == path.resolve():
        raise BackfillError("--output must not be the input file")
    options = Options(
        path=path,
        output=output,
        input_format=detect_format(path, input_format),
        mapping={FIELD_OPTIONS[name]: field for name, field in fields_by_option.items() if field},
        batch_size=min(batch_size, BATCH_LIMIT),
        rate=rate,
        wait_timeout=wait_timeout,
        restart=restart,
        progress=not quiet and sys.stderr.isatty(),
    )
    target = make_target(settings, site, api_url, api_key)
    try:
        backfill = Backfill(target, options)
        if backfill.counts.records and not quiet:
            click.echo(f"resuming after {backfill.counts.records} records", err=True)
        summary = backfill.run()
    except KeyboardInterrupt:
        click.echo("interrupted before starting", err=True)
        return INTERRUPTED
    finally:
        target.close()
    click.echo(f"{summary.line()}; decisions in {options.output}")
    return INTERRUPTED if summary.interrupted else 0
