"""Redis commands per decided comment, by process and by command, on each path a comment takes.

    .venv/bin/python -m bench.redis_commands [--comments 50] [--label before]
        [--moderation-command "CMD ..."] [--cwd DIR] [--results-dir DIR]

The service is driven only through the `moderation` command line (`--moderation-command`,
default the `moderation` script next to this Python; run from `--cwd`) and HTTP, so the same
script measures an older checkout (`--cwd` a worktree of it, with that checkout on PYTHONPATH).
The script starts its own `redis-server` on a free port (`--save '' --appendonly no`),
creates two sites (`sites create`; one with a callback URL to a receiver in this script that
answers 200) and a moderator (`moderators create`), starts `serve`, `worker` and
`worker --deliveries` with the `lite` model, warms up, then measures each path on N comments:

    auto            POST /v1/comments, one at a time; site without callback; approved by a worker
    auto-batch      the same, all N in one POST /v1/comments/batch
    auto-webhook    POST /v1/comments on the site with a callback URL (outbox, delivery worker)
    hold            abusive comments, held by the worker (lite toxicity), site without callback
    review          a moderator approves each held comment (POST /v1/review/<site>/<id>)
    hold-webhook    `hold` on the site with a callback URL
    review-webhook  `review` on the site with a callback URL (the moderator's decision, then
                    its webhook: the delivery worker's share is reported on its own)

Each phase is a window of `MONITOR` lines between two ECHO markers the benchmark sends: the first
right after `CONFIG RESETSTAT`, the last once the phase's requests are answered, its webhooks
received and Redis has seen nothing but idle traffic for --quiet seconds. Every line's client
address is mapped to the process holding that socket (psutil, sampled every 0.1 s), so commands
count per process kind (api, scoring worker, delivery worker; forked children with their
parent); what a Lua script runs counts for the client that ran it ("via lua"), what EXEC runs is
"via multi". The benchmark's own connections are left out. Idle traffic (heartbeats, queue polls,
maintenance) is measured first over --idle seconds with nothing to do, and its rate times each
window's length is subtracted. `INFO commandstats` (every client, Lua calls included) is kept as a
cross-check. Afterwards each comment's status is checked over HTTP.

Prints a table per path and the keys read more than once per comment (or per job); writes
bench/results/redis-commands-<label>.json (--results-dir).

`measure()` is the older whole-service figure (decided comments per second and Redis commands per
comment at full load) that bench/suite.py runs; it is kept as it was.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import psutil
import redis
import requests

from bench.reports import write_report
from tests.support.processes import wait_for
from tests.support.redis_server import free_port

PLAIN_SITE = "bench-plain"
HOOK_SITE = "bench-hook"
MODERATOR = "bench-mod"
BENCH = "bench"  # the process kind of this script's own connections: left out
UNKNOWN = "unattributed"
ALL = "all processes"
MARK = "redis-commands-mark"
SAMPLE_INTERVAL = 0.1

# --- small helpers ----------------------------------------------------------------------------


def cpu_model() -> str:
    """The CPU's model name, as /proc/cpuinfo gives it."""
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "unknown"


def cpu_flags() -> list[str]:
    """The instruction-set flags that tell CPU generations apart (AVX-512, AMX)."""
    text = Path("/proc/cpuinfo").read_text()
    flags = set(text.split())
    wanted = {"avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_bf16", "amx_int8", "amx_tile"}
    return sorted(flags & wanted)


def git_commit(directory: Path) -> str:
    """`git rev-parse --short HEAD` of `directory`."""
    command = ["git", "rev-parse", "--short", "HEAD"]
    done = subprocess.run(command, cwd=directory, capture_output=True, text=True, check=False)
    return done.stdout.strip() or "unknown"


def git_changes(directory: Path) -> list[str]:
    """Tracked files changed in `directory`'s work tree (`git status --porcelain`)."""
    status = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=no"],
        cwd=directory,
        capture_output=True,
        text=True,
        check=False,
    ).stdout
    return [line.strip() for line in status.splitlines() if line.strip()]


# --- the processes ----------------------------------------------------------------------------


def stop_process(process: subprocess.Popen[bytes], timeout: float = 30) -> None:
    """SIGTERM the process; SIGKILL its process group (started with it) if it is slow to go."""
    if process.poll() is None:
        process.terminate()
        with suppress(subprocess.TimeoutExpired):
            process.wait(timeout=timeout)
    with suppress(ProcessLookupError, PermissionError):  # leftovers of the group it started
        os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=10)


@contextmanager
def redis_server(directory: Path) -> Iterator[int]:
    """A redis-server on a free loopback port, no persistence; yields its port."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise SystemExit("redis-server is not installed (apt-get install -y redis-server)")
    port = free_port()
    command = [
        binary,
        "--port", str(port),
        "--bind", "127.0.0.1",
        "--save", "",
        "--appendonly", "no",
        "--dir", str(directory),
        "--logfile", str(directory / "redis.log"),
    ]  # fmt: skip
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, start_new_session=True)
    client = redis.Redis(port=port, socket_connect_timeout=0.5)

    def answers() -> bool:
        if process.poll() is not None:
            raise RuntimeError(f"redis-server exited; see {directory / 'redis.log'}")
        try:
            return bool(client.ping())
        except redis.ConnectionError:
            return False

    try:
        wait_for(answers, timeout=10, what="redis-server to answer")
        client.close()
        yield port
    finally:
        stop_process(process)


@dataclass
class Cli:
    """The `moderation` command line: argv prefix, environment and working directory."""

    prefix: list[str]
    env: dict[str, str]
    cwd: Path

    def run(self, *args: str) -> str:
        """Run `moderation ARGS` to completion; its standard output."""
        done = subprocess.run(
            [*self.prefix, *args],
            env=self.env,
            cwd=self.cwd,
            capture_output=True,
            text=True,
            check=False,
            timeout=120,
        )
        if done.returncode != 0:
            raise RuntimeError(f"moderation {' '.join(args)} failed:\n{done.stderr[-3000:]}")
        return done.stdout

    def json(self, *args: str) -> Any:
        return json.loads(self.run(*args))

    @contextmanager
    def background(self, args: Sequence[str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
        """`moderation ARGS` running in its own process group, logging to `log`."""
        with log.open("wb") as output:
            process = subprocess.Popen(
                [*self.prefix, *args],
                env=self.env,
                cwd=self.cwd,
                stdout=output,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        try:
            yield process
        finally:
            stop_process(process)


def default_command() -> list[str]:
    """The `moderation` console script next to this Python, else `python -m moderation.cli`."""
    script = Path(sys.executable).with_name("moderation")
    return [str(script)] if script.exists() else [sys.executable, "-m", "moderation.cli"]


def service_env(redis_port: int, api_port: int) -> dict[str, str]:
    """This environment less any MODERATION_* and REDIS_URL, plus the benchmark's settings."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("MODERATION_") and key != "REDIS_URL"
    }
    env.update(
        {
            "REDIS_URL": f"redis://127.0.0.1:{redis_port}/0",
            "HOST": "127.0.0.1",
            "PORT": str(api_port),
            "MODERATION_SECRET_KEY": "redis-commands-benchmark-secret-key-0123456789",
            "MODERATION_TOXICITY_MODEL": "lite",
            "MODERATION_ALLOW_PRIVATE_CALLBACKS": "true",
            "MODERATION_LOG_LEVEL": "info",
            "HF_HUB_OFFLINE": "1",
            "PYTHONUNBUFFERED": "1",
        }
    )
    return env


# --- the webhook receiver ---------------------------------------------------------------------


class Receiver:
    """A local HTTP server that answers 200 to every POST and keeps what each one said."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.received: list[tuple[str, str, str]] = []  # (comment id, status, decided_by)
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                try:
                    record = json.loads(body)["comment"]
                    decision = record.get("decision") or {}
                    entry = (record["id"], record["status"], decision.get("decided_by", ""))
                except (ValueError, KeyError, TypeError):
                    entry = ("", "unreadable", "")
                with owner.lock:
                    owner.received.append(entry)
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def arrived(self, ids: set[str], status: str) -> int:
        """How many of `ids` had a webhook saying `status`."""
        with self.lock:
            return len({cid for cid, got, _ in self.received if cid in ids and got == status})

    def __enter__(self) -> Receiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


# --- MONITOR ----------------------------------------------------------------------------------

LINE = re.compile(r"^(\d+\.\d+) \[\d+ ([^\]]+)\] (.*)$")
ARG = re.compile(r'"((?:[^"\\]|\\.)*)"')
ESCAPE = re.compile(r"\\(x[0-9a-fA-F]{2}|.)")
ESCAPES = {"n": "\n", "r": "\r", "t": "\t", "a": "\a", "b": "\b"}
CONTAINERS = {
    "ACL", "CLIENT", "CLUSTER", "COMMAND", "CONFIG", "FUNCTION", "LATENCY", "MEMORY",
    "MODULE", "OBJECT", "PUBSUB", "SCRIPT", "SLOWLOG", "XGROUP", "XINFO",
}  # fmt: skip


def _unescape(text: str) -> str:
    def one(match: re.Match[str]) -> str:
        code = match.group(1)
        if len(code) == 3 and code[0] == "x":
            return chr(int(code[1:], 16))
        return ESCAPES.get(code, code)

    return ESCAPE.sub(one, text)


@dataclass(frozen=True)
class Command:
    """One MONITOR line: when, which client ("lua" inside a script), the command, its args."""

    at: float
    client: str
    name: str
    args: tuple[str, ...]


def parse_line(line: str) -> Command | None:
    match = LINE.match(line)
    if match is None:
        return None
    words = [_unescape(word) for word in ARG.findall(match.group(3))]
    if not words:
        return None
    name = words[0].upper()
    args = tuple(words[1:])
    if name in CONTAINERS and args:
        name, args = f"{name} {args[0].upper()}", args[1:]
    return Command(float(match.group(1)), match.group(2), name, args)


class Monitor:
    """`MONITOR` on a socket of its own, read by a thread: every line Redis sends, in order."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.sock.sendall(b"MONITOR\r\n")
        self.reader = self.sock.makefile("rb")
        if self.reader.readline().strip() != b"+OK":
            raise RuntimeError("MONITOR was refused")
        self.lines: list[str] = []
        self.thread = threading.Thread(target=self._read, daemon=True)

    def _read(self) -> None:
        try:
            for raw in self.reader:
                if raw.startswith(b"+"):
                    self.lines.append(raw[1:].rstrip(b"\r\n").decode("utf-8", "replace"))
        except (OSError, ValueError):
            pass  # closed by __exit__

    def __enter__(self) -> Monitor:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        with suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()
        self.thread.join(timeout=5)


@dataclass
class ProcessInfo:
    pid: int
    kind: str
    command: str


class ProcessMap:
    """Which process holds each client socket to Redis: local address -> process. Sampled from
    /proc (psutil) every 0.1 s over the process trees of the services and of this script."""

    def __init__(self, redis_port: int) -> None:
        self.redis_port = redis_port
        self.roots: dict[int, str] = {os.getpid(): BENCH}
        self.owners: dict[str, ProcessInfo] = {}
        self.processes: dict[int, ProcessInfo] = {}
        self.lock = threading.Lock()
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def add(self, pid: int, kind: str) -> None:
        with self.lock:
            self.roots[pid] = kind
            self._sample()

    def sample(self) -> None:
        with self.lock:  # the sampling thread and the main thread both call this
            self._sample()

    def _sample(self) -> None:
        roots = dict(self.roots)
        members: dict[int, tuple[psutil.Process, str]] = {}
        # The services are this script's children too: their trees first, the rest is ours.
        for pid, kind in sorted(roots.items(), key=lambda item: item[1] == BENCH):
            try:
                root = psutil.Process(pid)
                tree = [root, *root.children(recursive=True)]
            except psutil.Error:
                continue
            for member in tree:
                members.setdefault(member.pid, (member, kind))
        found: dict[str, ProcessInfo] = {}
        for member, kind in members.values():
            try:
                connections = member.net_connections(kind="tcp")
                info = self.processes.get(member.pid)
                if info is None or info.kind != kind:
                    command = " ".join(member.cmdline()[1:4])[:120]
                    info = self.processes[member.pid] = ProcessInfo(member.pid, kind, command)
            except psutil.Error:
                continue
            for connection in connections:
                if connection.raddr and connection.raddr.port == self.redis_port:
                    # A forked child holds its parent's sockets too: the parent (first) wins.
                    found.setdefault(f"{connection.laddr.ip}:{connection.laddr.port}", info)
        self.owners.update(found)

    def owner(self, address: str) -> ProcessInfo | None:
        return self.owners.get(address)

    def _run(self) -> None:
        while not self.stopped.wait(SAMPLE_INTERVAL):
            self.sample()

    def __enter__(self) -> ProcessMap:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopped.set()
        self.thread.join(timeout=5)


# --- what a line is about ---------------------------------------------------------------------

COMMENT_ID = re.compile(r"(?<![\w-])[a-z]+(?:-[a-z]+)*-c\d{4}(?![\w-])")
AUTHOR_ID = re.compile(r"(?<![\w-])[a-z]+(?:-[a-z]+)*-a\d{4}(?![\w-])")
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
HEX = re.compile(r"(?<![0-9a-zA-Z])[0-9a-f]{16,}(?![0-9a-zA-Z])")
NUMBER = re.compile(r"(?<![0-9a-zA-Z])\d{5,}(?![0-9a-zA-Z])")
SITE = re.compile(rf"(?<![\w-])(?:{PLAIN_SITE}|{HOOK_SITE})(?![\w-])")

READS = {
    "BITCOUNT", "DUMP", "EXISTS", "GET", "GETBIT", "GETRANGE", "HEXISTS", "HGET", "HGETALL",
    "HKEYS", "HLEN", "HMGET", "HRANDFIELD", "HSCAN", "HSTRLEN", "HVALS", "LINDEX", "LLEN", "LPOS",
    "LRANGE", "MGET", "OBJECT ENCODING", "PFCOUNT", "PTTL", "SCARD", "SISMEMBER",
    "SMEMBERS", "SMISMEMBER", "SRANDMEMBER", "SSCAN", "STRLEN", "TTL", "TYPE", "XINFO STREAM",
    "XLEN", "XRANGE", "XREVRANGE", "ZCARD", "ZCOUNT", "ZLEXCOUNT", "ZMSCORE", "ZRANGE",
    "ZRANGEBYLEX", "ZRANGEBYSCORE", "ZRANK", "ZREVRANGE", "ZREVRANGEBYSCORE", "ZREVRANK", "ZSCAN",
    "ZSCORE",
}  # fmt: skip
ALL_KEYS = {"DEL", "EXISTS", "MGET", "TOUCH", "UNLINK", "WATCH"}
TWO_KEYS = {"BLMOVE", "BRPOPLPUSH", "LMOVE", "RENAME", "RPOPLPUSH", "SMOVE"}
NO_KEY = {
    "DISCARD", "ECHO", "EXEC", "HELLO", "INFO", "MULTI", "PING", "PSUBSCRIBE", "PUBLISH",
    "PUNSUBSCRIBE", "QUIT", "SELECT", "SUBSCRIBE", "TIME", "UNSUBSCRIBE", "UNWATCH",
}  # fmt: skip


class KeyPatterns:
    """A key with its comment, author, site, worker, digest and number parts named: the same
    pattern for every comment (mod:comment:{site}:{id}, rq:job:{hex}...)."""

    def __init__(self) -> None:
        self.names: dict[str, str] = {}  # literal -> placeholder, e.g. worker names

    def name(self, literal: str, placeholder: str) -> None:
        self.names[literal] = placeholder

    def __call__(self, key: str) -> str:
        for literal, placeholder in self.names.items():
            key = key.replace(literal, placeholder)
        key = COMMENT_ID.sub("{id}", key)
        key = AUTHOR_ID.sub("{author}", key)
        key = SITE.sub("{site}", key)
        key = UUID.sub("{uuid}", key)
        key = HEX.sub("{hex}", key)
        return NUMBER.sub("{n}", key)


key_pattern = KeyPatterns()


def keys_of(command: Command) -> list[str]:
    """The keys a command names (not a script's: its own commands show them)."""
    name, args = command.name, command.args
    if name in NO_KEY or (" " in name and name not in READS) or not args:
        return []
    if name in {"EVAL", "EVALSHA", "EVAL_RO", "EVALSHA_RO", "FCALL", "FCALL_RO"}:
        return []
    if name in ALL_KEYS:
        return list(args)
    if name in TWO_KEYS:
        return list(args[:2])
    if name in {"BLPOP", "BRPOP", "BZPOPMIN", "BZPOPMAX"}:
        return list(args[:-1])
    if name in {"MSET", "MSETNX"}:
        return list(args[::2])
    return [args[0]]


@dataclass(frozen=True)
class Attributed:
    """A command with the process that caused it and how it ran (direct, multi, lua)."""

    command: Command
    kind: str
    pid: int | None
    via: str


class Attributor:
    """Turns MONITOR lines into attributed commands. A script's commands ("lua") belong to the
    client whose EVALSHA came just before them (Redis runs one thing at a time); what a client
    sends between MULTI and EXEC is "via multi"."""

    def __init__(self, processes: ProcessMap) -> None:
        self.processes = processes
        self.last_client = ""
        self.in_multi: set[str] = set()
        self.scripts: dict[str, str] = {}  # sha1 -> the script's first line

    def __call__(self, command: Command) -> Attributed:
        if command.client == "lua":
            client, via = self.last_client, "lua"
        else:
            client = self.last_client = command.client
            via = "multi" if client in self.in_multi else "direct"
            if command.name == "MULTI":
                self.in_multi.add(client)
            elif command.name in {"EXEC", "DISCARD"}:
                self.in_multi.discard(client)
                via = "multi"
            elif command.name in {"SCRIPT LOAD", "EVAL", "EVAL_RO"} and command.args:
                self._learn_script(command.args[0])
        owner = self.processes.owner(client)
        if owner is None:
            return Attributed(command, UNKNOWN, None, via)
        return Attributed(command, owner.kind, owner.pid, via)

    def _learn_script(self, body: str) -> None:
        digest = hashlib.sha1(body.encode("utf-8", "surrogateescape")).hexdigest()
        lines = [line.strip() for line in body.splitlines() if line.strip()]
        comment = next((line for line in lines if line.startswith("--")), lines[0] if lines else "")
        self.scripts[digest] = comment[:70]

    def label(self, item: Attributed) -> str:
        """The command as the tables show it: EVALSHA with its script's first key pattern."""
        command = item.command
        if command.name in {"EVALSHA", "EVAL", "EVALSHA_RO", "EVAL_RO"} and command.args:
            script = command.args[0]
            if command.name.startswith("EVAL_") or command.name == "EVAL":
                script = hashlib.sha1(script.encode("utf-8", "surrogateescape")).hexdigest()
            keys = (
                int(command.args[1]) if len(command.args) > 2 and command.args[1].isdigit() else 0
            )
            first = key_pattern(command.args[2]) if keys else "no keys"
            return f"{command.name} {script[:8]} ({first})"
        return command.name


def signature_of(item: Attributed) -> tuple[str, str, str]:
    """(process kind, command, first key's pattern): what idle traffic is recognised by."""
    keys = keys_of(item.command)
    return (item.kind, item.command.name, key_pattern(keys[0]) if keys else "")


# --- counting ---------------------------------------------------------------------------------


Tally = Counter[tuple[str, ...]]


@dataclass
class Window:
    """The attributed commands between two markers, and how long that was."""

    items: list[Attributed]
    seconds: float


def tally(window: Window, attributor: Attributor) -> Tally:
    """(kind, via, command label, key pattern) -> commands, the benchmark's own left out. A
    command naming several keys counts once, under its first."""
    counts: Tally = Counter()
    for item in window.items:
        if item.kind == BENCH:
            continue
        keys = keys_of(item.command)
        pattern = key_pattern(keys[0]) if keys else ""
        counts[(item.kind, item.via, attributor.label(item), pattern)] += 1
    return counts


def net(counts: Tally, idle: dict[tuple[str, ...], float], seconds: float) -> dict:
    """Counts less the idle rate times `seconds`, each at least 0."""
    return {key: max(0.0, count - idle.get(key, 0.0) * seconds) for key, count in counts.items()}


def rollup(values: dict[tuple[str, ...], float], *fields: int) -> dict[tuple[str, ...], float]:
    out: dict[tuple[str, ...], float] = defaultdict(float)
    for key, value in values.items():
        out[tuple(key[i] for i in fields)] += value
    return out


def reads_by_key(window: Window, idle: Tally, idle_seconds: float, comments: int) -> list[dict]:
    """Reads per key pattern and process kind, and over all processes where several read it:
    how many distinct keys, reads per key and per comment, by command; patterns read less than
    once per 50 comments are left out. Idle traffic's reads of the same pattern are subtracted."""
    seen: dict[tuple[str, str], Counter[str]] = defaultdict(Counter)
    by_command: dict[tuple[str, str], Counter[str]] = defaultdict(Counter)
    for item in window.items:
        command = item.command
        if item.kind == BENCH or command.name not in READS:
            continue
        via = "" if item.via == "direct" else f" via {item.via}"
        for key in keys_of(command):
            pattern = key_pattern(key)
            for kind in (item.kind, ALL):
                seen[(pattern, kind)][key] += 1
                prefix = f"{item.kind}: " if kind == ALL else ""
                by_command[(pattern, kind)][f"{prefix}{command.name}{via}"] += 1
    idle_share: Counter[tuple[str, str]] = Counter()
    for (kind, _via, name, pattern), count in idle.items():
        if name in READS:
            idle_share[(pattern, kind)] += count
            idle_share[(pattern, ALL)] += count
    users = Counter(pattern for pattern, kind in seen if kind != ALL)
    rows = []
    for (pattern, kind), keys in seen.items():
        if kind == ALL and users[pattern] < 2:
            continue
        total = sum(keys.values())
        background = idle_share[(pattern, kind)] / idle_seconds * window.seconds
        total_net = max(0.0, total - background)
        if total_net / comments < 0.02:
            continue
        rows.append(
            {
                "key": pattern,
                "process": kind,
                "distinct_keys": len(keys),
                "count": total,
                "idle_estimate": round(background, 1),
                "per_key": round(total_net / len(keys), 2),
                "per_comment": round(total_net / comments, 2),
                "most_on_one_key": max(keys.values()),
                "by_command": dict(by_command[(pattern, kind)].most_common()),
            }
        )
    rows.sort(key=lambda row: (-row["per_comment"], row["key"], row["process"]))
    return rows


# --- the benchmark ----------------------------------------------------------------------------

OPENERS = [
    "Thanks for", "I enjoyed reading", "Great write-up on", "Interesting piece about",
    "Good summary of", "Really liked the report on", "Nice coverage of", "Helpful article on",
]  # fmt: skip
TOPICS = [
    "the bridge reopening", "the library budget", "the new bus routes", "the school garden",
    "the farmers market", "the river cleanup", "the museum exhibit", "the cycling lanes",
    "the harbour festival", "the orchestra season",
]  # fmt: skip
CLOSERS = [
    "I learned something new today.", "We walked past it yesterday.",
    "Hope there is a follow-up soon.", "The photos were lovely.",
    "Our neighbours were talking about it.", "Please keep covering local news.",
    "It answered most of my questions.", "Looking forward to the next one.",
]  # fmt: skip
INSULTS = [
    "you are a fucking idiot", "shut up you stupid moron", "you pathetic fucking loser",
    "what a dumb fucking idiot you are", "you are a worthless piece of shit",
]  # fmt: skip
TARGETS = [
    "and so is the mayor", "and your article is garbage", "nobody cares about the council",
    "go away from this website", "and your editor is a clown", "stop writing about sports",
    "this paper is trash", "and the bus company too", "learn to write properly",
    "your opinion on parking is worthless",
]  # fmt: skip


class Texts:
    """Comment texts no two of which are the same once digits and punctuation are ignored (the
    service counts such repeats as spam)."""

    def __init__(self, seed: int = 7) -> None:
        rng = random.Random(seed)
        self.benign = [f"{a} {b}. {c}" for a in OPENERS for b in TOPICS for c in CLOSERS]
        self.abusive = [f"{a}, {b}!" for a in INSULTS for b in TARGETS]
        self.abusive += [f"{text} Seriously." for text in self.abusive]
        self.abusive += [f"Honestly, {text}" for text in self.abusive]
        rng.shuffle(self.benign)
        rng.shuffle(self.abusive)

    def take(self, kind: str, count: int) -> list[str]:
        pool = self.benign if kind == "benign" else self.abusive
        if count > len(pool):
            raise SystemExit(f"only {len(pool)} distinct {kind} texts are left; use fewer")
        taken, pool[:] = pool[:count], pool[count:]
        return taken


@dataclass(frozen=True)
class PathSpec:
    """One path a comment takes through the service."""

    name: str
    description: str
    site: str
    action: str  # "post", "batch" or "review"
    expected: str  # the status each comment must have at the end
    webhook: bool


PATHS = [
    PathSpec("auto", "POST /v1/comments one at a time, no callback; approved by a worker",
             PLAIN_SITE, "post", "approved", False),
    PathSpec("auto-batch", "all in one POST /v1/comments/batch, no callback; approved",
             PLAIN_SITE, "batch", "approved", False),
    PathSpec("auto-webhook", "POST /v1/comments one at a time, site with a callback URL; "
             "approved, webhook delivered", HOOK_SITE, "post", "approved", True),
    PathSpec("hold", "abusive, POST /v1/comments one at a time, no callback; held by a worker",
             PLAIN_SITE, "post", "held", False),
    PathSpec("review", "a moderator approves each held comment (POST /v1/review/<site>/<id>), "
             "no callback", PLAIN_SITE, "review", "approved", False),
    PathSpec("hold-webhook", "abusive, POST /v1/comments one at a time, site with a callback "
             "URL; held, webhook delivered", HOOK_SITE, "post", "held", True),
    PathSpec("review-webhook", "a moderator approves each held comment, site with a callback "
             "URL; webhook delivered", HOOK_SITE, "review", "approved", True),
]  # fmt: skip


@dataclass
class Bench:
    """Everything a phase needs: the service, its Redis, the observers."""

    args: argparse.Namespace
    cli: Cli
    url: str
    keys: dict[str, str]  # site -> API key
    token: str
    redis: redis.Redis
    monitor: Monitor
    processes: ProcessMap
    receiver: Receiver
    attributor: Attributor
    texts: Texts = field(default_factory=Texts)
    http: requests.Session = field(default_factory=requests.Session)
    parsed: int = 0  # MONITOR lines attributed so far
    commands: list[Attributed] = field(default_factory=list)

    # -- the stream --

    def catch_up(self) -> list[Attributed]:
        """Attribute the MONITOR lines that came since the last call; the new ones."""
        lines = self.monitor.lines
        end = len(lines)
        new = []
        for line in lines[self.parsed : end]:
            command = parse_line(line)
            if command is not None:
                new.append(self.attributor(command))
        self.parsed = end
        self.commands.extend(new)
        return new

    def mark(self, name: str, *, reset: bool = False, stats: bool = False) -> tuple[int, dict]:
        """Send a marker through Redis (ECHO); the index of its line in `commands` once it is
        seen. In the same MULTI/EXEC, so that no other client's command comes in between: with
        `reset`, CONFIG RESETSTAT before it; with `stats`, INFO commandstats after it (then
        returned, else {})."""
        text = f"{MARK}:{name}"
        with self.redis.pipeline(transaction=True) as pipe:
            if reset:
                pipe.config_resetstat()
            pipe.echo(text)
            if stats:
                pipe.info("commandstats")
            answers = pipe.execute()

        def seen() -> int | None:
            self.catch_up()
            for index in range(len(self.commands) - 1, -1, -1):
                command = self.commands[index].command
                if command.name == "ECHO" and command.args == (text,):
                    return index + 1  # truthy even for the first line
            return None

        index = wait_for(seen, timeout=10, what=f"marker {name}") - 1
        return index, answers[-1] if stats else {}

    def window(self, start: int, end: int) -> Window:
        # Lines from connections first seen after they were parsed: attribute again now.
        self.processes.sample()
        items = []
        for item in self.commands[start + 1 : end]:
            if item.kind == UNKNOWN and item.via != "lua":
                owner = self.processes.owner(item.command.client)
                if owner is not None:
                    item = Attributed(item.command, owner.kind, owner.pid, item.via)
            items.append(item)
        items = self._lua_owners(items)
        seconds = self.commands[end].command.at - self.commands[start].command.at
        return Window(items, seconds)

    def _lua_owners(self, items: list[Attributed]) -> list[Attributed]:
        """Give script lines the (possibly just resolved) owner of the line before them."""
        out: list[Attributed] = []
        for item in items:
            if item.via == "lua" and out:
                before = out[-1]
                item = Attributed(item.command, before.kind, before.pid, "lua")
            out.append(item)
        return out

    # -- waiting --

    def status(self) -> dict:
        return self.cli.json("status", "--json")

    def busy(self) -> dict[str, int]:
        """What `moderation status` says is still to do: jobs queued, started or scheduled,
        pending comments, webhooks waiting in the outbox (only the non-zero counts)."""
        report = self.status()
        counts = {
            f"{queue} {name}": report["queues"][queue][name]
            for queue in report["queues"]
            for name in ("queued", "started", "scheduled")
        }
        counts["pending comments"] = report["pending_comments"]
        counts["webhook outbox"] = report["webhook_outbox"]
        return {name: count for name, count in counts.items() if count}

    def settled(self) -> bool:
        return not self.busy()

    def wait_quiet(self, signature: set[tuple[str, str, str]], quiet: float) -> None:
        """Bounded polling until the stream has had only idle traffic (commands whose process
        kind, command and key pattern the idle interval showed) for `quiet` seconds."""
        last = time.time()

        def calm() -> bool:
            nonlocal last
            for item in self.catch_up():
                if item.kind == BENCH:
                    continue
                if signature_of(item) not in signature:
                    last = max(last, item.command.at)
            return time.time() - last >= quiet

        wait_for(calm, timeout=self.args.timeout, interval=0.05, what="Redis to go quiet")

    # -- requests --

    def post(self, site: str, comment: dict) -> None:
        response = self.http.post(
            f"{self.url}/v1/comments",
            json=comment,
            headers={"Authorization": f"Bearer {self.keys[site]}"},
            timeout=30,
        )
        if response.status_code not in (200, 202):
            raise RuntimeError(f"POST /v1/comments: {response.status_code} {response.text}")

    def batch(self, site: str, comments: list[dict]) -> None:
        response = self.http.post(
            f"{self.url}/v1/comments/batch",
            json={"comments": comments},
            headers={"Authorization": f"Bearer {self.keys[site]}"},
            timeout=60,
        )
        response.raise_for_status()
        refused = [r for r in response.json()["results"] if r["status"] != "accepted"]
        if refused:
            raise RuntimeError(f"batch: not accepted: {refused[:3]}")

    def review(self, site: str, comment_id: str, action: str = "approve") -> None:
        response = self.http.post(
            f"{self.url}/v1/review/{site}/{comment_id}",
            json={"action": action, "note": "benchmark"},
            headers={"Authorization": f"Bearer {self.token}"},
            timeout=30,
        )
        if response.status_code != 200:
            raise RuntimeError(f"review {comment_id}: {response.status_code} {response.text}")

    def record(self, site: str, comment_id: str, wait: float = 0) -> dict:
        response = self.http.get(
            f"{self.url}/v1/comments/{comment_id}",
            params={"wait": wait} if wait else None,
            headers={"Authorization": f"Bearer {self.keys[site]}"},
            timeout=wait + 30,
        )
        response.raise_for_status()
        return response.json()


def comments_for(phase: str, texts: list[str]) -> list[dict]:
    """Request bodies: ids `<phase>-c0001...`, each by an author of its own."""
    return [
        {"id": f"{phase}-c{n:04d}", "content": text, "author": {"id": f"{phase}-a{n:04d}"}}
        for n, text in enumerate(texts, start=1)
    ]


def warm_up(bench: Bench, count: int) -> None:
    """Every path once or a few times (first requests, first jobs, the model, scripts loaded)."""
    for site in (PLAIN_SITE, HOOK_SITE):
        prefix = "warm" if site == PLAIN_SITE else "warmhook"
        approved = comments_for(f"{prefix}-ok", bench.texts.take("benign", count))
        held = comments_for(f"{prefix}-bad", bench.texts.take("abusive", count))
        batched = comments_for(f"{prefix}-batch", bench.texts.take("benign", count))
        for comment in approved + held:
            bench.post(site, comment)
        bench.batch(site, batched)
        for comment in approved + held + batched:
            bench.record(site, comment["id"], wait=10)
        for comment in held:
            bench.review(site, comment["id"])
        if site == HOOK_SITE:
            ids = {comment["id"] for comment in approved + held + batched}
            wait_for(
                lambda ids=ids: bench.receiver.arrived(ids, "approved") == len(ids),
                timeout=bench.args.timeout,
                interval=0.1,
                what="the warm-up's webhooks",
            )
    wait_for(bench.settled, timeout=bench.args.timeout, interval=0.2, what="the warm-up to end")


def measure_idle(bench: Bench) -> tuple[Tally, float, set[tuple[str, str, str]]]:
    """The commands of `--idle` seconds with nothing to do: counts, seconds, signatures."""
    start, _ = bench.mark("idle:start")
    deadline = time.monotonic() + bench.args.idle
    # Bounded wait over a fixed measuring interval: nothing to synchronise with.
    wait_for(lambda: time.monotonic() >= deadline, timeout=bench.args.idle + 5, interval=0.2)
    end, _ = bench.mark("idle:end")
    window = bench.window(start, end)
    counts = tally(window, bench.attributor)
    signature = {signature_of(item) for item in window.items}
    return counts, window.seconds, signature


def run_path(
    bench: Bench,
    spec: PathSpec,
    held: dict[str, list[str]],
    idle: Tally,
    idle_seconds: float,
    signature: set[tuple[str, str, str]],
) -> dict:
    """One phase: reset, act, wait until done and quiet, count; then check every comment."""
    count = bench.args.comments
    if spec.action == "review":
        if spec.site not in held:
            raise SystemExit(f"{spec.name} reviews the comments a hold path held: run that too")
        ids = held[spec.site]
    else:
        texts = bench.texts.take("abusive" if spec.expected == "held" else "benign", count)
        comments = comments_for(spec.name, texts)
        ids = [comment["id"] for comment in comments]
    wait_for(bench.settled, timeout=bench.args.timeout, interval=0.2, what="a settled service")
    bench.wait_quiet(signature, bench.args.quiet)
    start, _ = bench.mark(f"{spec.name}:start", reset=True)
    started = time.monotonic()
    if spec.action == "post":
        for comment in comments:
            bench.post(spec.site, comment)
    elif spec.action == "batch":
        bench.batch(spec.site, comments)
    else:
        for comment_id in ids:
            bench.review(spec.site, comment_id)
    answered = time.monotonic() - started
    if spec.webhook:
        wanted = set(ids)
        wait_for(
            lambda: bench.receiver.arrived(wanted, spec.expected) == len(wanted),
            timeout=bench.args.timeout,
            interval=0.05,
            what=f"{spec.name}: webhooks",
        )
    bench.wait_quiet(signature, bench.args.quiet)
    end, stats = bench.mark(f"{spec.name}:end", stats=True)
    window = bench.window(start, end)
    left_over = bench.busy()
    if left_over:
        print(f"warning: {spec.name}: work left when its window closed: {left_over}")
    if bench.args.monitor_log:
        write_monitor_log(bench.args.monitor_log, spec.name, window)
    records = [bench.record(spec.site, comment_id) for comment_id in ids]
    wrong = [record for record in records if record["status"] != spec.expected]
    if wrong:
        reasons = {record["id"]: (record["decision"] or {}).get("reasons") for record in wrong}
        raise RuntimeError(f"{spec.name}: not {spec.expected}: {reasons}")
    if spec.expected == "held":
        held[spec.site] = ids
    result = analyse(bench, spec, window, stats, idle, idle_seconds, answered)
    result["left_when_window_closed"] = left_over
    return result


def analyse(
    bench: Bench,
    spec: PathSpec,
    window: Window,
    stats: dict,
    idle: Tally,
    idle_seconds: float,
    answered: float,
) -> dict:
    """The phase's figures per comment: in all, per process kind, per command, per key."""
    comments = bench.args.comments
    counts = tally(window, bench.attributor)
    rates = {key: value / idle_seconds for key, value in idle.items()}
    values = net(counts, rates, window.seconds)
    per = 1 / comments

    def per_comment(table: dict[tuple[str, ...], float]) -> dict[str, float]:
        rows = sorted(table.items(), key=lambda kv: -kv[1])
        return {
            " | ".join(key): round(value * per, 2) for key, value in rows if value * per >= 0.005
        }

    by_kind = rollup(values, 0)
    by_kind_command = rollup(values, 0, 2)
    kinds = {}
    for (kind,), total in sorted(by_kind.items(), key=lambda kv: -kv[1]):
        commands = {name: value for (k, name), value in by_kind_command.items() if k == kind}
        kinds[kind] = {
            "per_comment": round(total * per, 2),
            "raw": sum(c for key, c in counts.items() if key[0] == kind),
            "by_command": per_comment({(name,): v for name, v in commands.items()}),
        }
    stat_calls = Counter(
        {name.removeprefix("cmdstat_"): int(entry["calls"]) for name, entry in stats.items()}
    )
    # The benchmark's own: the markers' transactions (see Bench.mark).
    stat_calls.subtract({"config|resetstat": 1, "echo": 2, "exec": 1, "multi": 1})
    stat_calls = +stat_calls
    seen = Counter(
        item.command.name.lower().replace(" ", "|") for item in window.items if item.kind != BENCH
    )
    raw_total = sum(counts.values())
    by_pid: dict[int, Counter[str]] = defaultdict(Counter)
    for item in window.items:
        if item.pid is not None and item.kind != BENCH:
            keys = keys_of(item.command)
            by_pid[item.pid][f"{item.command.name} {key_pattern(keys[0]) if keys else ''}"] += 1
    described = bench.processes.processes
    finished = Counter(
        item.command.args[0].removeprefix("rq:finished:")
        for item in window.items
        if item.command.name == "ZADD" and item.command.args[0].startswith("rq:finished:")
    )
    return {
        "description": spec.description,
        "site": spec.site,
        "webhook": spec.webhook,
        "comments": comments,
        "window_s": round(window.seconds, 3),
        "requests_answered_s": round(answered, 3),
        "commands_per_comment": round(sum(values.values()) * per, 2),
        "raw_commands": raw_total,
        "idle_estimate": round(raw_total - sum(values.values()), 1),
        "unattributed_commands": sum(c for key, c in counts.items() if key[0] == UNKNOWN),
        "rq_jobs_finished": dict(finished),
        "by_process": kinds,
        "by_command": per_comment(rollup(values, 2)),
        "by_command_and_key": per_comment(rollup(values, 0, 1, 2, 3)),
        "reads": reads_by_key(window, idle, idle_seconds, comments),
        "raw_by_process_id": {
            f"{pid} {described[pid].kind}": {
                "commands": sum(counter.values()),
                "top": dict(counter.most_common(12)),
            }
            for pid, counter in sorted(by_pid.items(), key=lambda kv: -sum(kv[1].values()))
        },
        "commandstats_calls": sum(stat_calls.values()),
        "commandstats_by_command": dict(stat_calls.most_common()),
        "commandstats_less_monitor": {
            name: stat_calls[name] - seen[name]
            for name in sorted(set(stat_calls) | set(seen))
            if stat_calls[name] != seen[name]
        },
    }


@contextmanager
def running_bench(args: argparse.Namespace, scratch: Path) -> Iterator[Bench]:
    """Redis, the observers, the sites and moderator, and the service, ready for comments."""
    with ExitStack() as stack:
        redis_port = stack.enter_context(redis_server(scratch))
        monitor = stack.enter_context(Monitor(redis_port))
        processes = stack.enter_context(ProcessMap(redis_port))
        receiver = stack.enter_context(Receiver())
        api_port = free_port()
        cli = Cli(args.moderation_command, service_env(redis_port, api_port), args.cwd)
        keys = {
            PLAIN_SITE: cli.json("sites", "create", PLAIN_SITE, "--json")["api_key"],
            HOOK_SITE: cli.json(
                "sites", "create", HOOK_SITE, "--callback-url", receiver.url, "--json"
            )["api_key"],
        }
        token = cli.json(
            "moderators", "create", MODERATOR, "--role", "moderator",
            "--sites", f"{PLAIN_SITE},{HOOK_SITE}", "--json",
        )["token"]  # fmt: skip
        for kind, argv in (
            ("api", ["serve"]),
            ("scoring worker", ["worker"]),
            ("delivery worker", ["worker", "--deliveries"]),
        ):
            log = scratch / f"{kind.replace(' ', '-')}.log"
            processes.add(stack.enter_context(cli.background(argv, log)).pid, kind)
        url = f"http://127.0.0.1:{api_port}"
        connection = stack.enter_context(redis.Redis(port=redis_port, decode_responses=True))
        bench = Bench(
            args, cli, url, keys, token, connection, monitor, processes, receiver,
            Attributor(processes),
        )  # fmt: skip

        def ready() -> dict | None:
            try:
                if requests.get(f"{url}/readyz", timeout=2).status_code != 200:
                    return None
            except requests.RequestException:
                return None
            queues = bench.status()["queues"]
            return queues if all(queue["workers"] for queue in queues.values()) else None

        queues = wait_for(ready, timeout=180, interval=0.5, what=f"the service ({scratch})")
        for queue in queues.values():
            for name in queue["workers"]:
                key_pattern.name(name, "{worker}")
        yield bench


def run(args: argparse.Namespace) -> dict:
    """Start everything, warm up, measure idle traffic, then each path."""
    report: dict[str, Any] = {
        "label": args.label,
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "git_commit": git_commit(args.cwd),
        "git_changes": git_changes(args.cwd),
        "tree": str(args.cwd),
        "cpu": cpu_model(),
        "cpu_flags": cpu_flags(),
        "cores": os.cpu_count(),
        "redis_server": subprocess.run(
            ["redis-server", "--version"], capture_output=True, text=True, check=False
        ).stdout.strip(),
        "python": sys.version.split()[0],
        "moderation_command": shlex.join(args.moderation_command),
        "comments_per_path": args.comments,
        "settings": "MODERATION_TOXICITY_MODEL=lite, MODERATION_ALLOW_PRIVATE_CALLBACKS=true, "
        "every other setting its default (rate limits and learning on); 1 scoring worker, "
        "1 delivery worker, `moderation serve` (gunicorn, its default processes and threads)",
    }
    scratch = Path(tempfile.mkdtemp(prefix="redis-commands-"))
    try:
        with running_bench(args, scratch) as bench:
            measure_paths(bench, report)
    except BaseException:
        print(f"the services' logs are in {scratch}", file=sys.stderr)
        raise
    shutil.rmtree(scratch, ignore_errors=True)
    return report


def measure_paths(bench: Bench, report: dict[str, Any]) -> None:
    """Warm up, measure idle traffic, then each path; into `report`."""
    args = bench.args
    warm_up(bench, args.warm_up)
    idle, idle_seconds, signature = measure_idle(bench)
    report["idle"] = {
        "seconds": round(idle_seconds, 2),
        "commands_per_s": round(sum(idle.values()) / idle_seconds, 2),
        "by_process_per_s": {
            kind: round(value / idle_seconds, 2)
            for (kind,), value in sorted(rollup(dict(idle), 0).items())
        },
        "by_command_per_s": {
            " | ".join(key): round(value / idle_seconds, 3)
            for key, value in sorted(idle.items(), key=lambda kv: -kv[1])
        },
    }
    print_idle(report["idle"])
    report["paths"] = {}
    held: dict[str, list[str]] = {}
    for spec in PATHS:
        if args.paths and spec.name not in args.paths:
            continue
        result = run_path(bench, spec, held, idle, idle_seconds, signature)
        report["paths"][spec.name] = result
        print_path(spec.name, result)
    report["webhook_share"] = webhook_shares(report["paths"])
    print_summary(report)
    report["processes"] = [
        {"pid": info.pid, "kind": info.kind, "command": info.command}
        for info in sorted(bench.processes.processes.values(), key=lambda info: info.pid)
        if info.kind != BENCH
    ]
    report["scripts"] = bench.attributor.scripts


# --- output -----------------------------------------------------------------------------------

KINDS = ("api", "scoring worker", "delivery worker", UNKNOWN)


def write_monitor_log(path: Path, phase: str, window: Window) -> None:
    """Append the window's commands, attributed: phase, process kind, pid, via, the line."""
    with path.open("a", encoding="utf-8") as log:
        for item in window.items:
            command = item.command
            words = " ".join(repr(arg) if " " in arg or not arg else arg for arg in command.args)
            log.write(
                f"{phase}\t{item.kind}\t{item.pid or '-'}\t{item.via}\t{command.at:.6f}\t"
                f"{command.name} {words}\n"
            )


def webhook_shares(paths: dict[str, dict]) -> dict[str, dict[str, float]]:
    """What a callback URL adds per comment: `<path>-webhook` less `<path>`, per process."""
    shares = {}
    for name, with_hook in paths.items():
        without = paths.get(name.removesuffix("-webhook"))
        if not name.endswith("-webhook") or without is None:
            continue
        kinds = set(with_hook["by_process"]) | set(without["by_process"])
        share = {
            kind: round(
                with_hook["by_process"].get(kind, {}).get("per_comment", 0)
                - without["by_process"].get(kind, {}).get("per_comment", 0),
                2,
            )
            for kind in sorted(kinds)
        }
        share["total"] = round(
            with_hook["commands_per_comment"] - without["commands_per_comment"], 2
        )
        shares[name] = share
    return shares


def print_summary(report: dict) -> None:
    """One line per path, and the webhooks' share."""
    columns = [
        kind for kind in KINDS if any(kind in p["by_process"] for p in report["paths"].values())
    ]
    print(f"\n{'Redis commands per comment':28}{'total':>8}" + "".join(f"{k:>17}" for k in columns))
    for name, result in report["paths"].items():
        cells = "".join(
            f"{result['by_process'].get(kind, {}).get('per_comment', 0):>17}" for kind in columns
        )
        print(f"{name:28}{result['commands_per_comment']:>8}{cells}")
    for name, share in report["webhook_share"].items():
        cells = "".join(f"{share.get(kind, 0):>+17}" for kind in columns)
        label = f"webhook's share of {name.removesuffix('-webhook')}"
        print(f"{label:28}{share['total']:>+8}{cells}")


def print_idle(idle: dict) -> None:
    """Idle traffic: commands per second in all and per process kind."""
    kinds = ", ".join(f"{kind} {rate}" for kind, rate in idle["by_process_per_s"].items())
    print(
        f"idle: {idle['commands_per_s']} commands/s over {idle['seconds']} s ({kinds}); "
        "subtracted from every path at that rate"
    )


def print_path(name: str, result: dict) -> None:
    """The path's table: commands per comment by process, top commands, repeated reads."""
    kinds = result["by_process"]
    shares = ", ".join(f"{kind} {kinds[kind]['per_comment']}" for kind in KINDS if kind in kinds)
    print(f"\n== {name}: {result['description']}")
    print(
        f"   {result['comments']} comments, window {result['window_s']} s; "
        f"{result['commands_per_comment']} Redis commands per comment ({shares}); "
        f"raw {result['raw_commands']}, idle estimate {result['idle_estimate']}, "
        f"commandstats {result['commandstats_calls']}; "
        f"RQ jobs finished {result['rq_jobs_finished']}"
    )
    columns = [kind for kind in KINDS if kind in kinds]
    names: Counter[str] = Counter()
    for kind in columns:
        for command, value in kinds[kind]["by_command"].items():
            names[command] += value
    header = "".join(f"{kind:>17}" for kind in columns)
    print(f"   {'command (per comment)':44}{header}{'total':>9}")
    for command, total in names.most_common(16):
        cells = "".join(f"{kinds[kind]['by_command'].get(command, 0):>17}" for kind in columns)
        print(f"   {command[:44]:44}{cells}{round(total, 2):>9}")
    if len(names) > 16:
        rest = sum(value for _, value in names.most_common()[16:])
        print(f"   {f'({len(names) - 16} more commands)':44}{'':>{17 * len(columns)}}{rest:>9.2f}")
    repeated = [
        row for row in result["reads"] if row["per_key"] > 1.05 or row["per_comment"] >= 0.95
    ]
    if repeated:
        print(
            f"   {'reads of a key pattern':64} {'by':16}{'keys':>5}{'/key':>7}{'/comment':>9}"
            "  commands"
        )
        for row in repeated[:16]:
            commands = ", ".join(f"{c} {n}" for c, n in row["by_command"].items())
            print(
                f"   {row['key'][:64]:64} {row['process'][:16]:16}{row['distinct_keys']:>5}"
                f"{row['per_key']:>7}{row['per_comment']:>9}  {commands[:90]}"
            )


# --- the whole service at full load: bench/suite.py's figure ------------------------------------
#
# measure(): the service (bench/stacks.py: redis-server, `moderation serve`, N workers with the
# `lite` model) takes numbered YouTube comments through `POST /v1/comments/batch`, 100 a request
# from two client threads, as fast as the API takes them, timed until every one is decided;
# `INFO commandstats` before and after gives the commands per decided comment (all processes
# together; a MULTI/EXEC transaction counts its commands).

BATCH = 100
CLIENTS = 2


def command_counts(connection: redis.Redis) -> dict[str, int]:
    """Calls per command so far (`INFO commandstats`), e.g. {"hset": 1200, ...}."""
    stats = connection.info("commandstats")
    return {name.removeprefix("cmdstat_"): int(entry["calls"]) for name, entry in stats.items()}


def post_batches(url: str, api_key: str, texts: Sequence[str], ids: range) -> None:
    """POST comments `ids` through the batch endpoint, BATCH a request."""
    session = requests.Session()
    headers = {"Authorization": f"Bearer {api_key}"}
    for first in range(ids.start, ids.stop, BATCH):
        comments = [
            {
                "id": f"c{n}",
                "content": f"{texts[n % len(texts)]} ({n})",
                "author": {"id": f"u{n % 500}"},
            }
            for n in range(first, min(ids.stop, first + BATCH))
        ]
        response = session.post(
            f"{url}/v1/comments/batch", json={"comments": comments}, headers=headers, timeout=120
        )
        response.raise_for_status()


def measure(comments: int, workers: int, settings: dict[str, str] | None = None) -> dict:
    """Start the service, decide `comments`, and report the rate and commands per comment."""
    # The project's own helpers, imported here so that the benchmark above needs none of them.
    from bench.comments import shuffled_comments
    from bench.stacks import running_service
    from moderation.storage.comment_store import CommentStore

    texts = shuffled_comments()
    env = {"MODERATION_TOXICITY_MODEL": "lite", **(settings or {})}
    with (
        tempfile.TemporaryDirectory() as scratch,
        running_service(Path(scratch), workers, env) as service,
    ):
        connection = redis.Redis.from_url(service.redis_url)
        store = CommentStore(connection)
        # Warm up (first requests, first jobs), then measure from a quiet start.
        post_batches(service.url, service.api_key, texts, range(10_000_000, 10_000_200))
        wait_for(lambda: store.pending_count() == 0, timeout=120, interval=0.05)
        before = command_counts(connection)
        meter = service.cpu_meter()
        meter.start()
        started = time.perf_counter()
        share = -(-comments // CLIENTS)
        clients = [
            threading.Thread(
                target=post_batches,
                args=(
                    service.url,
                    service.api_key,
                    texts,
                    range(n * share, min(comments, (n + 1) * share)),
                ),
            )
            for n in range(CLIENTS)
        ]
        for client in clients:
            client.start()
        for client in clients:
            client.join()
        accepted = time.perf_counter() - started
        wait_for(lambda: store.pending_count() == 0, timeout=1800, interval=0.05)
        decided = time.perf_counter() - started
        cpu = meter.stop()
        after = command_counts(connection)
    calls = {name: after[name] - before.get(name, 0) for name in after}
    calls = {name: count for name, count in calls.items() if count > 0 and name != "info"}
    per_comment = {
        name: round(count / comments, 2)
        for name, count in sorted(calls.items(), key=lambda item: -item[1])
    }
    return {
        "comments": comments,
        "workers": workers,
        "accepted_per_s": round(comments / accepted, 1),
        "decided_per_s": round(comments / decided, 1),
        "redis_commands_per_comment": round(sum(calls.values()) / comments, 1),
        "cpu_ms_per_comment": {
            role: round(1000 * cores * cpu["wall_s"] / comments, 2)
            for role, cores in cpu["cores_busy"].items()
        },
        "by_command": per_comment,
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--comments", type=int, default=50, help="per path")
    parser.add_argument("--label", default="latest", help="names the JSON file (before, after)")
    parser.add_argument(
        "--moderation-command",
        type=shlex.split,
        default=default_command(),
        help="argv prefix that runs the CLI, e.g. '.venv/bin/python -m moderation.cli'",
    )
    parser.add_argument("--cwd", type=Path, default=Path.cwd(), help="where it runs (the tree)")
    parser.add_argument(
        "--results-dir", type=Path, default=Path(__file__).resolve().parent / "results"
    )
    parser.add_argument(
        "--paths", nargs="*", choices=[spec.name for spec in PATHS], help="default: all"
    )
    parser.add_argument("--warm-up", type=int, default=5, help="comments per kind and site")
    parser.add_argument("--idle", type=float, default=20.0, help="seconds of idle measurement")
    parser.add_argument("--quiet", type=float, default=1.5, help="idle seconds that end a phase")
    parser.add_argument("--timeout", type=float, default=180.0, help="seconds any wait may take")
    parser.add_argument(
        "--monitor-log", type=Path, help="also write each window's attributed commands here"
    )
    args = parser.parse_args(argv)
    args.cwd = args.cwd.resolve()
    if args.monitor_log:
        args.monitor_log.write_text("")
    started = time.monotonic()
    report = run(args)
    report["runtime_s"] = round(time.monotonic() - started, 1)
    path = write_report(args.results_dir / f"redis-commands-{args.label}.json", report)
    print(f"\n{report['cpu']}, {report['cores']} cores; tree {report['git_commit']}; wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
