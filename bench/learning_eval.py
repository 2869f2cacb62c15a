"""Per-site learning measured end to end: labels in through the API, decisions out of a worker.

    make bench-learning                              # everything, seeds 0 1 2 (about 15 minutes)
    .venv/bin/python -m bench.learning_eval --quick  # smoke run: video 03, seed 0, small sets
    .venv/bin/python -m bench.learning_eval --seeds 0 --only spam

Every figure comes from the real processes (bench/stacks.py: redis-server on a free port,
`moderation serve`, one `moderation worker`, lite toxicity model, rate limits off). Each
condition runs on a fresh site, so no label, model or spam counter (repeated text) of one
condition reaches another.

(a) Spam, leave one video out. For each YouTube Spam Collection video the base spam model is
rebuilt without it (`workers.learning.build_spam_base`) and the worker started with that file
(`MODERATION_SPAM_MODEL`). The video's comments are shuffled with the seed: the first 200 are
the label pool, the rest the evaluation set. Conditions: no labels; 25 / 100 / 200 pool labels
through Akismet `submit-spam` / `submit-ham`; the same through moderators (the pool comments
are submitted and decided, then a moderator rejects the spam ones as spam and approves the
rest, both with `overturn`). After the labels the site's training is awaited (`GET /v1/models`
until `labels_since_training` is false), then the evaluation set is submitted and measured:
ROC AUC of `scores.spam`, the share of legitimate comments held for spam, the share of spam
held for spam, the spam model the decisions name, and the held-out quality `/v1/models` gives.

(b) The Davidson scenario. A site whose moderators approve profane but non-hateful tweets and
reject hateful ones: a seeded label pool of 1,500 tweets and an evaluation set of 4,000 others.
Conditions: no labels; the first 500 and all 1,500 pool tweets submitted, decided, then
rejected as toxic (hateful) or approved (the rest) by a moderator with `overturn`. Measured on
the evaluation set: the share of hateful, non-hateful (and of those, offensive) tweets held
for any reason and held for toxicity, the toxicity model named, its held-out AUC.

Prints markdown tables (each cell: the mean over seeds, then each seed's value); writes
bench/results/learning-eval-<date>.json. Logs of the last run stay in
bench/.cache/learning-eval-last-run.
"""

from __future__ import annotations

import argparse
import random
import shutil
import statistics
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import redis
import requests
from sklearn.metrics import roc_auc_score

from bench.detoxify_bench import machine
from bench.detoxify_model import CACHE
from bench.load_client import ServiceClient, decided
from bench.reports import write_report
from bench.stacks import Service, running_service
from moderation.storage.moderator_store import ModeratorStore, Role
from moderation.storage.site_store import SiteStore
from workers.learning import build_spam_base, public_data
from workers.scoring.spam_signals import text_fingerprint

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
SCRATCH = CACHE / "learning-eval-last-run"  # logs of the latest run, replaced by the next
SECRET_KEY = "learning-eval-secret-key-0123456789abcdef"
#: Seconds to wait for a site's models to learn from every label (the contract says 60).
TRAINING_DEADLINE = 120.0
#: Seconds to wait for a set of comments to be decided.
DECISION_DEADLINE = 600.0
BATCH = 100
READERS = 8
AKISMET_IP = "203.0.113.5"


@dataclass(frozen=True)
class Plan:
    """What one run measures."""

    seeds: tuple[int, ...]
    videos: tuple[str, ...]
    spam_pool: int
    spam_steps: tuple[int, ...]
    tweet_pool: int
    tweet_eval: int
    tweet_steps: tuple[int, ...]
    parts: tuple[str, ...]


FULL = Plan((0, 1, 2), ("01", "02", "03"), 200, (25, 100, 200), 1500, 4000, (500, 1500), ())
QUICK = Plan((0,), ("03",), 200, (25, 100), 400, 600, (400,), ())


# --- data -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Item:
    """One labeled text to submit: `label` 1 is spam (videos) or hateful (tweets); `kind` is
    the tweet's class (hate, offensive, neither)."""

    id: str
    text: str
    label: int
    kind: str = ""


def spam_split(video: str, seed: int, pool_size: int) -> tuple[list[Item], list[Item]]:
    """The video's comments shuffled with `seed`: the label pool, then the evaluation set."""
    items = [
        Item(f"y{video}-{n}", example.text, example.label)
        for n, example in enumerate(public_data.youtube())
        if example.group == video
    ]
    random.Random(seed).shuffle(items)
    return items[:pool_size], items[pool_size:]


def tweet_split(seed: int, pool_size: int, eval_size: int) -> tuple[list[Item], list[Item]]:
    """A seeded sample of Davidson's tweets: the label pool, then the evaluation set."""
    items = [
        Item(f"t{n}", example.text, example.label, kind)
        for n, (example, kind) in enumerate(public_data.tweets())
    ]
    random.Random(seed).shuffle(items)
    return items[:pool_size], items[pool_size : pool_size + eval_size]


def class_counts(items: Iterable[Item]) -> dict[str, int]:
    counts = Counter(item.label for item in items)
    return {"positive": counts[1], "negative": counts[0]}


# --- the service, as sites and moderators see it ----------------------------------------------


class Site(ServiceClient):
    """One site's backend: batches, Akismet labels, `/v1/models`, decisions read back."""

    def __init__(self, base_url: str, name: str, api_key: str) -> None:
        super().__init__(base_url, api_key)
        self.name = name
        self.api_key = api_key

    def submit_batch(self, items: Sequence[Item]) -> list[str]:
        """POST the items as comments, 100 a batch; the ids not accepted."""
        refused = []
        for first in range(0, len(items), BATCH):
            chunk = items[first : first + BATCH]
            body = {"comments": [{"id": item.id, "content": item.text} for item in chunk]}
            response = self.session.post(
                f"{self.base_url}/v1/comments/batch", json=body, headers=self.headers, timeout=60
            )
            response.raise_for_status()
            results = response.json()["results"]
            refused += [r["id"] for r in results if r["status"] != "accepted"]
        return refused

    def decisions(self, items: Sequence[Item]) -> dict[str, dict]:
        """Each item's decided record, read back with `GET ?wait=` by a few threads."""
        deadline = time.monotonic() + DECISION_DEADLINE

        def read(item: Item) -> dict:
            record = self.read(item.id)
            while not decided(record):
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{self.name}/{item.id} not decided in time")
                record = self.read(item.id)
            return record

        with ThreadPoolExecutor(READERS) as pool:
            return {
                item.id: record for item, record in zip(items, pool.map(read, items), strict=True)
            }

    def akismet_label(self, item: Item) -> int:
        """submit-spam (label 1) or submit-ham; the status code."""
        verdict = "spam" if item.label else "ham"
        form = {"api_key": self.api_key, "user_ip": AKISMET_IP, "comment_content": item.text}
        response = self.session.post(f"{self.base_url}/1.1/submit-{verdict}", data=form, timeout=30)
        return response.status_code

    def models(self) -> dict:
        response = self.session.get(f"{self.base_url}/v1/models", headers=self.headers, timeout=30)
        response.raise_for_status()
        return response.json()

    def wait_trained(self, deadline: float = TRAINING_DEADLINE) -> tuple[dict, float, bool]:
        """The models report once nothing is left untrained (or the deadline passed), the
        seconds waited, and whether it timed out."""
        started = time.monotonic()
        while True:
            report = self.models()
            waited = time.monotonic() - started
            if not report["labels_since_training"]:
                return report, waited, False
            if waited > deadline:
                return report, waited, True
            time.sleep(0.5)


class Moderator:
    """A moderator of one site, deciding through `POST /v1/review/<site>/<id>`."""

    def __init__(self, base_url: str, site: str, token: str) -> None:
        self.url = f"{base_url}/v1/review/{site}"
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {token}"

    def decide(self, comment_id: str, reject_as: str | None) -> int:
        """Reject as `reject_as` ("spam", "toxic"), or approve when None; the status code."""
        body: dict[str, Any] = {"action": "approve", "overturn": True}
        if reject_as:
            body = {"action": "reject", "overturn": True, "label": reject_as}
        return self.session.post(f"{self.url}/{comment_id}", json=body, timeout=30).status_code


class Lab:
    """Fresh sites and their moderators on one running service."""

    def __init__(self, service: Service) -> None:
        self.url = service.url
        connection = redis.Redis.from_url(service.redis_url)
        self.sites = SiteStore(connection, SECRET_KEY)
        self.moderators = ModeratorStore(connection)

    def site(self, name: str) -> Site:
        return Site(self.url, name, self.sites.create(name).api_key)

    def moderator(self, site: Site) -> Moderator:
        token = self.moderators.create(f"mod-{site.name}", Role.MODERATOR, [site.name]).token
        return Moderator(self.url, site.name, token)


def stack_settings(spam_model: Path | None = None) -> dict[str, str]:
    """The service's environment: lite toxicity model, no rate limits, one secret key."""
    settings = {
        "MODERATION_TOXICITY_MODEL": "lite",
        "MODERATION_RATE_LIMIT_SITE": "off",
        "MODERATION_RATE_LIMIT_MODERATOR": "off",
        "MODERATION_AUTH_FAILURE_LIMIT": "off",
        "MODERATION_SECRET_KEY": SECRET_KEY,
    }
    if spam_model is not None:
        settings["MODERATION_SPAM_MODEL"] = str(spam_model)
    return settings


# --- giving labels ----------------------------------------------------------------------------


def give_akismet_labels(site: Site, items: Sequence[Item]) -> list[str]:
    """Each item through submit-spam or submit-ham, in order; problems found."""
    statuses = Counter(site.akismet_label(item) for item in items)
    return [f"akismet answered {code} {n} times" for code, n in statuses.items() if code != 200]


def give_moderator_labels(
    site: Site, moderator: Moderator, items: Sequence[Item], reject_as: str
) -> list[str]:
    """Submit the items as comments, wait for their decisions, then a moderator rejects the
    positive ones as `reject_as` and approves the rest (both with `overturn`), in order."""
    problems = [f"batch refused {comment_id}" for comment_id in site.submit_batch(items)]
    site.decisions(items)
    statuses = Counter(
        moderator.decide(item.id, reject_as if item.label else None) for item in items
    )
    problems += [f"review answered {code} {n} times" for code, n in statuses.items() if code != 200]
    return problems


def give_labels(lab: Lab, site: Site, source: str, items: Sequence[Item], positive: str) -> dict:
    """Give `items` as labels through `source` (label 1 as `positive`: spam, toxic), wait
    for training, check that `/v1/models` counts them; what happened."""
    if not items:
        return {"problems": [], "training_wait_s": 0.0, "training_timed_out": False}
    if source == "akismet":
        problems = give_akismet_labels(site, items)
    else:
        problems = give_moderator_labels(site, lab.moderator(site), items, positive)
    report, waited, timed_out = site.wait_trained()
    if timed_out:
        problems.append(f"labels_since_training still true after {waited:.0f} s")
    problems += check_counts(report["labels"], items, positive)
    return {
        "problems": problems,
        "training_wait_s": round(waited, 1),
        "training_timed_out": timed_out,
        "labels_counted": report["labels"],
    }


def check_counts(counted: dict[str, int], items: Sequence[Item], positive: str) -> list[str]:
    """Whether `/v1/models` counts the labels given (`positive` for label 1, `ok` for 0)."""
    given = class_counts(items)
    expected = {positive: given["positive"], "ok": given["negative"]}
    wrong = {kind: (counted.get(kind, 0), n) for kind, n in expected.items()}
    return [
        f"/v1/models counts {got} {kind} labels, {want} were given"
        for kind, (got, want) in wrong.items()
        if got != want
    ]


# --- measuring --------------------------------------------------------------------------------


def spam_hold(record: dict) -> bool:
    return any(r.startswith("spam ") or r.endswith("allowed") for r in reasons(record))


def toxicity_hold(record: dict) -> bool:
    return any(r.startswith("toxicity ") for r in reasons(record))


def held(record: dict) -> bool:
    return record["status"] == "held"


def reasons(record: dict) -> list[str]:
    return record["decision"]["reasons"]


def share(records: Sequence[dict], test: Callable[[dict], bool]) -> float | None:
    return round(sum(map(test, records)) / len(records), 4) if records else None


def auc(labels: Sequence[int], scores: Sequence[float]) -> float | None:
    return round(float(roc_auc_score(labels, scores)), 4) if len(set(labels)) == 2 else None


def repeated(earlier: Sequence[Item], items: Sequence[Item]) -> list[bool]:
    """For each item, whether its text (as the duplicate counter fingerprints it) came
    earlier on the site: in `earlier`, or before it in `items`."""
    seen = {text_fingerprint(item.text) for item in earlier}
    flags = []
    for item in items:
        fingerprint = text_fingerprint(item.text)
        flags.append(fingerprint in seen)
        seen.add(fingerprint)
    return flags


def decided_records(site: Site, items: Sequence[Item]) -> tuple[list[dict], list[str]]:
    """Submit the items and read their decisions back, in the items' order."""
    problems = [f"batch refused {comment_id}" for comment_id in site.submit_batch(items)]
    records = site.decisions(items)
    return [records[item.id] for item in items], problems


def measure_spam(site: Site, items: Sequence[Item], earlier: Sequence[Item]) -> dict:
    """The evaluation set's spam figures on `site`, where `earlier` were submitted before.
    Legitimate comments held for spam are also counted apart when their text came before
    (the duplicate counter's doing, not the model's)."""
    records, problems = decided_records(site, items)
    spam = [r for r, item in zip(records, items, strict=True) if item.label]
    legit = [r for r, item in zip(records, items, strict=True) if not item.label]
    flags = repeated(earlier, items)
    legit_repeats = [
        r for r, item, f in zip(records, items, flags, strict=True) if f and not item.label
    ]
    return {
        "problems": problems,
        "evaluated": class_counts(items),
        "roc_auc": auc(
            [i.label for i in items], [r["decision"]["scores"]["spam"] for r in records]
        ),
        "legit_held_for_spam": share(legit, spam_hold),
        "spam_held_for_spam": share(spam, spam_hold),
        "legit_held_any": share(legit, held),
        "spam_held_any": share(spam, held),
        "repeated_texts": {"all": sum(flags), "legit": len(legit_repeats)},
        "legit_repeats_held_for_spam": sum(map(spam_hold, legit_repeats)),
        "models_named": dict(Counter(r["decision"]["models"]["spam"] for r in records)),
    }


def measure_tweets(site: Site, items: Sequence[Item]) -> dict:
    """The evaluation set's hold rates by tweet class on `site`."""
    records, problems = decided_records(site, items)
    by_class = {
        name: [r for r, item in zip(records, items, strict=True) if test(item)]
        for name, test in (
            ("hateful", lambda item: item.label == 1),
            ("non_hateful", lambda item: item.label == 0),
            ("offensive", lambda item: item.kind == "offensive"),
            ("neither", lambda item: item.kind == "neither"),
        )
    }
    scores = [r["decision"]["scores"]["toxicity"] for r in records]
    return {
        "problems": problems,
        "evaluated": {name: len(group) for name, group in by_class.items()},
        "held_any": {name: share(group, held) for name, group in by_class.items()},
        "held_for_toxicity": {
            name: share(group, toxicity_hold) for name, group in by_class.items()
        },
        "held_for_spam": {name: share(group, spam_hold) for name, group in by_class.items()},
        "toxicity_auc_hateful": auc([i.label for i in items], scores),
        "models_named": dict(Counter(r["decision"]["models"]["toxicity"] for r in records)),
    }


def model_summary(report: dict, kind: str) -> dict:
    """What `/v1/models` says of the site's `kind` model: the one in use, its held-out
    quality (None while the base model is in use), and the latest training."""
    model = next(m for m in report["models"] if m["kind"] == kind)
    history = model["history"]
    latest = history[0] if history else None
    return {
        "in_use": model["in_use"],
        "version": model["version"],
        "labels": model["labels"],
        "held_out": model["held_out"],
        "trainings_logged": len(history),
        "latest_training": latest,
    }


# --- the conditions ---------------------------------------------------------------------------


def conditions(steps: Sequence[int], sources: Sequence[str]) -> list[tuple[str, int]]:
    """(source, labels): no labels first, then each source at each step."""
    return [("none", 0)] + [(source, k) for source in sources for k in steps]


def spam_condition(
    lab: Lab, video: str, seed: int, source: str, k: int, pool: list[Item], test: list[Item]
) -> dict:
    """One fresh site: `k` pool labels through `source`, then the evaluation set measured."""
    started = time.perf_counter()
    site = lab.site(f"v{video}-s{seed}-{source}-{k}")
    labels = pool[:k]
    given = give_labels(lab, site, source, labels, "spam")
    measured = measure_spam(site, test, labels if source == "moderator" else [])
    return {
        "part": "spam",
        "video": video,
        "seed": seed,
        "source": source,
        "labels": k,
        "labels_given": class_counts(labels),
        **given,
        **measured,
        "problems": given["problems"] + measured["problems"],
        "model": model_summary(site.models(), "spam"),
        "seconds": round(time.perf_counter() - started, 1),
    }


def tweet_condition(lab: Lab, seed: int, k: int, pool: list[Item], test: list[Item]) -> dict:
    """One fresh site: `k` moderator labels from the pool, then the evaluation set measured."""
    started = time.perf_counter()
    site = lab.site(f"tweets-s{seed}-{k}")
    labels = pool[:k]
    given = give_labels(lab, site, "moderator", labels, "toxic")
    measured = measure_tweets(site, test)
    return {
        "part": "tweets",
        "seed": seed,
        "source": "moderator" if k else "none",
        "labels": k,
        "labels_given": class_counts(labels),
        **given,
        **measured,
        "problems": given["problems"] + measured["problems"],
        "model": model_summary(site.models(), "toxicity"),
        "seconds": round(time.perf_counter() - started, 1),
    }


def run_spam(plan: Plan, scratch: Path, log: Callable[[str], None]) -> list[dict]:
    """Part (a): per left-out video, its base model, one stack, every seed and condition."""
    rows = []
    for video in plan.videos:
        path = scratch / "models" / f"spam-base-without-{video}.npz"
        path.parent.mkdir(parents=True, exist_ok=True)
        build_spam_base.build(leave_out=[video]).save(path)
        with running_service(scratch / f"spam-{video}", 1, stack_settings(path)) as service:
            lab = Lab(service)
            for seed in plan.seeds:
                pool, test = spam_split(video, seed, plan.spam_pool)
                for source, k in conditions(plan.spam_steps, ("akismet", "moderator")):
                    rows.append(spam_condition(lab, video, seed, source, k, pool, test))
                    log(progress(rows[-1]))
    return rows


def run_tweets(plan: Plan, scratch: Path, log: Callable[[str], None]) -> list[dict]:
    """Part (b): one stack (the shipped spam model), every seed and condition."""
    rows = []
    with running_service(scratch / "tweets", 1, stack_settings()) as service:
        lab = Lab(service)
        for seed in plan.seeds:
            pool, test = tweet_split(seed, plan.tweet_pool, plan.tweet_eval)
            for _, k in conditions(plan.tweet_steps, ("moderator",)):
                rows.append(tweet_condition(lab, seed, k, pool, test))
                log(progress(rows[-1]))
    return rows


def condition(row: dict) -> str:
    where = f"video {row['video']}" if row["part"] == "spam" else "tweets"
    return f"{where} seed {row['seed']} {row['source']} {row['labels']}"


def progress(row: dict) -> str:
    problems = f"; PROBLEMS: {row['problems']}" if row["problems"] else ""
    return f"{condition(row)}: {row['model']['in_use']}, {row['seconds']} s{problems}"


# --- tables -----------------------------------------------------------------------------------


def mean(values: Sequence[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return statistics.fmean(known) if known else None


def cell(values: Sequence[float | None], percent: bool = False) -> str:
    """The mean, then each seed's value when there are several: `0.951 (0.94 0.96 0.95)`."""

    def fmt(value: float | None, digits: int) -> str:
        if value is None:
            return "n/a"
        return f"{value * 100:.{max(0, digits - 2)}f}%" if percent else f"{value:.{digits}f}"

    text = fmt(mean(values), 3)
    if len(values) > 1:
        text += " (" + " ".join(fmt(v, 2) for v in values) + ")"
    return text


def short_name(model: str) -> str:
    """`base` for a base model, else the site model's version (`v3`)."""
    return model.rsplit(".", 1)[-1] if "+" in model else "base"


def model_cell(rows: Sequence[dict]) -> str:
    """The model the decisions named, per seed (`v2/base` if they named two)."""
    return " ".join("/".join(sorted(map(short_name, row["models_named"]))) for row in rows)


def held_out_cell(rows: Sequence[dict]) -> str:
    """`/v1/models`' held-out AUC of the site model in use against the model it replaced;
    for a site still on the base model, its latest candidate's (marked `not used`)."""

    def one(row: dict) -> str:
        model = row["model"]
        quality, note = model["held_out"], ""
        if quality is None and model["latest_training"]:
            quality, note = model["latest_training"]["held_out"], ", not used"
        if not quality or quality.get("auc") is None:
            return "-"
        theirs = quality["in_use_auc"]
        return (
            f"{quality['auc']:.2f} vs {'n/a' if theirs is None else f'{theirs:.2f}'} "
            f"({short_name(quality['in_use'])}, {quality['labels']}{note})"
        )

    return "; ".join(one(row) for row in rows)


def grouped(rows: Sequence[dict], *keys: str) -> dict[tuple, list[dict]]:
    groups: dict[tuple, list[dict]] = {}
    for row in rows:
        groups.setdefault(tuple(row[key] for key in keys), []).append(row)
    return groups


def spam_table(rows: Sequence[dict]) -> str:
    lines = [
        "| video left out | labels | through | spam model named | ROC AUC | legit held for spam "
        "| spam held for spam | held-out AUC, site vs before (`/v1/models`) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for (video, source, k), group in grouped(rows, "video", "source", "labels").items():
        lines.append(
            f"| {video} | {k} | {source if k else '-'} | {model_cell(group)} "
            f"| {cell([r['roc_auc'] for r in group])} "
            f"| {cell([r['legit_held_for_spam'] for r in group], percent=True)} "
            f"| {cell([r['spam_held_for_spam'] for r in group], percent=True)} "
            f"| {held_out_cell(group)} |"
        )
    return "\n".join(lines)


def tweet_table(rows: Sequence[dict]) -> str:
    lines = [
        "| moderator labels | toxicity model named | hateful held | hateful held for toxicity "
        "| non-hateful held | non-hateful held for toxicity | offensive held for toxicity "
        "| ROC AUC hateful | held-out AUC, site vs before (`/v1/models`) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for (k,), group in grouped(rows, "labels").items():
        lines.append(
            f"| {k} | {model_cell(group)} "
            f"| {cell([r['held_any']['hateful'] for r in group], percent=True)} "
            f"| {cell([r['held_for_toxicity']['hateful'] for r in group], percent=True)} "
            f"| {cell([r['held_any']['non_hateful'] for r in group], percent=True)} "
            f"| {cell([r['held_for_toxicity']['non_hateful'] for r in group], percent=True)} "
            f"| {cell([r['held_for_toxicity']['offensive'] for r in group], percent=True)} "
            f"| {cell([r['toxicity_auc_hateful'] for r in group])} "
            f"| {held_out_cell(group)} |"
        )
    return "\n".join(lines)


def markdown(report: dict) -> str:
    """The README's tables, with when and where they were measured."""
    plan, spam, tweets = report["plan"], report["spam"], report["tweets"]
    seeds = " ".join(str(seed) for seed in plan["seeds"])
    head = (
        f"Measured {report['date']} on {report['machine']['cpu']} "
        f"({report['machine']['cores']} cores), lite toxicity model, one worker; "
        f"{report['seconds'] / 60:.1f} minutes; seeds {seeds} "
        "(each cell: the mean, then each seed's value). Model named: what the evaluation "
        "set's decisions name per seed, `base` or the site's own model `v<n>`. Held-out AUC: "
        "`/v1/models`' figure for the site model in use against the model it replaced (which, "
        "on how many held-out labels); while the base model is in use, the latest candidate's."
    )
    parts = [head]
    if spam:
        parts += [
            "**Spam, leave one video out** (base model built without the video; "
            f"label pool {plan['spam_pool']}, the rest evaluated):",
            spam_table(spam),
        ]
    if tweets:
        parts += [
            "**Davidson tweets** (moderators approve profane but non-hateful tweets, reject "
            f"hateful ones; pool {plan['tweet_pool']}, evaluation {plan['tweet_eval']}):",
            tweet_table(tweets),
        ]
    problems = [f"- {condition(row)}: {p}" for row in spam + tweets for p in row["problems"]]
    if problems:
        parts += ["Problems:", "\n".join(problems)]
    return "\n\n".join(parts)


# --- the run ----------------------------------------------------------------------------------


def chosen_plan(args: argparse.Namespace) -> Plan:
    plan = QUICK if args.quick else FULL
    seeds = tuple(args.seeds) if args.seeds else plan.seeds
    parts = tuple(args.only) if args.only else ("spam", "tweets")
    return Plan(**{**plan.__dict__, "seeds": seeds, "parts": parts})


def write(report: dict) -> Path:
    suffix = "-quick" if report["quick"] else ""
    return write_report(RESULTS / f"learning-eval-{report['date']}{suffix}.json", report)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: one video, one seed")
    parser.add_argument("--seeds", type=int, nargs="+", help="default 0 1 2 (quick: 0)")
    parser.add_argument("--only", choices=("spam", "tweets"), action="append")
    args = parser.parse_args(argv)
    plan = chosen_plan(args)
    shutil.rmtree(SCRATCH, ignore_errors=True)

    def log(line: str) -> None:
        print(line, flush=True)

    started = time.perf_counter()
    report: dict[str, Any] = {
        "date": datetime.now(UTC).date().isoformat(),
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "plan": plan.__dict__,
        "quick": args.quick,
    }
    report["spam"] = run_spam(plan, SCRATCH, log) if "spam" in plan.parts else []
    report["tweets"] = run_tweets(plan, SCRATCH, log) if "tweets" in plan.parts else []
    report["seconds"] = round(time.perf_counter() - started, 1)
    print(markdown(report))
    print(f"wrote {write(report)}")


if __name__ == "__main__":
    main()
