"""The dashboard's figures: counts per site and UTC hour, kept in Redis by the steps they count.

Each decision adds its tallies to the hour's hash in the same Lua step that stores it
(`moderation.storage.comment_store`), each accepted comment in the transaction that stores it,
each reader's report in the step that records it; so the figures never disagree with what
happened, and the dashboard reads `hours` small hashes per site instead of scanning comments.

Fields of `mod:stats:{site}:{hour}`:

    submitted                   comments accepted
    auto|approved|held|rejected automatic decisions by outcome
    reason|<label>              automatic holds by what they named (`review_labels`: each
                                toxicity label, `spam`, `banned`, `author`, `reported`, ...)
    rejection|<label>           automatic rejections (banned authors, `auto_reject`), the same
    moderated|approved|rejected moderators' decisions
    reviewed, overturned        moderators' decisions of a comment the service had decided, and
                                those that went the other way
    reviewed|<label>            the same per label the automatic decision named (`approved`
    overturned|<label>          for an automatic approval)
    reported                    comments that readers' reports sent back to review
    reports                     readers' reports counted
    queue, oldest               the site's held queue after the hour's last change: its size,
                                and its oldest comment's submission time ("" when empty)
    queue_start, oldest_start   the same before the hour's first change
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

import redis

from moderation.core.records import Action, Decision, isoformat, utc_now
from moderation.core.redis_keys import KEYS
from moderation.core.rules import ReasonKind, reason_kind

#: Hours kept: the longest window the dashboard offers (30 days), and a few days more.
KEPT_HOURS = 35 * 24
STATS_TTL_SECONDS = KEPT_HOURS * 3600
WINDOWS = (24, 168, 720)
OUTCOMES = ("approved", "held", "rejected")
#: The fields with no `|` that are counts (the rest are the queue's state).
COUNTS = ("submitted", "reported", "reports", "reviewed", "overturned")


def hour_of(timestamp: float) -> int:
    """Hours since the epoch: the bucket a moment falls in."""
    return int(timestamp // 3600)


def review_labels(decision: Decision) -> list[str]:
    """What an automatic decision said, one label per thing a moderator can disagree with:
    `approved` for an approval, else each score label and kind of reason it named."""
    if decision.action is Action.APPROVE:
        return ["approved"]
    labels: list[str] = []
    for reason in decision.reasons:
        kind = reason_kind(reason)
        if kind is ReasonKind.TOXICITY:  # "insult 0.91 >= 0.80": the label itself
            label = reason.split(" ", 1)[0]
        else:  # spam (its score, the honeypot, links), banned, author, reported, ...
            label = kind.value if kind else "other"
        if label not in labels:
            labels.append(label)
    return labels or ["other"]


def decision_tallies(decision: Decision, previous: Decision | None) -> list[str]:
    """The fields a stored decision adds one to (see the module's docstring)."""
    outcome = decision.action.status.value
    if decision.decided_by == "auto":
        tallies = [f"auto|{outcome}"]
        if decision.action is not Action.APPROVE:
            field = "reason" if decision.action is Action.HOLD else "rejection"
            tallies += [f"{field}|{label}" for label in review_labels(decision)]
            if any(reason_kind(r) is ReasonKind.REPORTED for r in decision.reasons):
                tallies.append("reported")
        return tallies
    tallies = [f"moderated|{outcome}"]
    if previous is not None and previous.decided_by == "auto":
        agreed = (previous.action is Action.APPROVE) == (decision.action is Action.APPROVE)
        tallies += ["reviewed"] if agreed else ["reviewed", "overturned"]
        for label in review_labels(previous):
            tallies.append(f"reviewed|{label}")
            if not agreed:
                tallies.append(f"overturned|{label}")
    return tallies


class DashboardStats:
    """Reads the hourly figures of one or more sites, summed."""

    def __init__(self, connection: redis.Redis) -> None:
        self.redis = connection

    def read(self, sites: Sequence[str], hours: int, now: float | None = None) -> dict[str, Any]:
        """The window of `hours` hours ending with the current one, oldest first; see
        the dashboard page (`moderation.http.web.dashboard`) for the shape."""
        now = utc_now() if now is None else now
        last = hour_of(now)
        window = list(range(last - hours + 1, last + 1))
        buckets, queues = self._buckets(sites, window)
        counts = [_sum_fields(per_site) for per_site in zip(*buckets.values(), strict=True)]
        if not sites:
            counts = [{} for _ in window]
        per_hour = _per_hour(counts)
        size, oldest_age = _queue_series(buckets, queues, window, now)
        return {
            "sites": list(sites),
            "hours": hours,
            "buckets": [isoformat(hour * 3600) for hour in window],
            **per_hour,
            "held_by_reason": _prefixed_totals(counts, "reason|"),
            "rejected_by_reason": _prefixed_totals(counts, "rejection|"),
            "queue": {
                "size": size,
                "oldest_age_seconds": oldest_age,
                "now": {
                    "size": sum(queue[0] for queue in queues.values()),
                    "oldest_age_seconds": _age(
                        min((q[1] for q in queues.values() if q[1] is not None), default=None),
                        now,
                    ),
                },
            },
            "overturns": _overturns(counts),
            "totals": _totals(per_hour, counts),
        }

    def _buckets(
        self, sites: Sequence[str], window: list[int]
    ) -> tuple[dict[str, list[dict[str, str]]], dict[str, tuple[int, float | None]]]:
        """Each site's hashes for the window, and its held queue now (size, oldest submission
        time), in one round trip."""
        with self.redis.pipeline(transaction=False) as pipe:
            for site in sites:
                for hour in window:
                    pipe.hgetall(KEYS.hourly_stats(site, hour))
                pipe.zcard(KEYS.held(site))
                pipe.zrange(KEYS.held(site), 0, 0, withscores=True)
            replies = pipe.execute()
        buckets: dict[str, list[dict[str, str]]] = {}
        queues: dict[str, tuple[int, float | None]] = {}
        step = len(window) + 2
        for index, site in enumerate(sites):
            mine = replies[index * step : (index + 1) * step]
            buckets[site] = [
                {key.decode(): value.decode() for key, value in raw.items()} for raw in mine[:-2]
            ]
            oldest = mine[-1]
            queues[site] = (int(mine[-2]), float(oldest[0][1]) if oldest else None)
        return buckets, queues


def _sum_fields(hashes: Iterable[dict[str, str]]) -> dict[str, int]:
    """The sites' counts of one hour, added up (the queue fields are not counts)."""
    total: dict[str, int] = {}
    for fields in hashes:
        for key, value in fields.items():
            if "|" in key or key in COUNTS:
                total[key] = total.get(key, 0) + int(value)
    return total


def _per_hour(counts: list[dict[str, int]]) -> dict[str, Any]:
    return {
        "submitted": [hour.get("submitted", 0) for hour in counts],
        "outcomes": {o: [hour.get(f"auto|{o}", 0) for hour in counts] for o in OUTCOMES},
        "moderated": {
            o: [hour.get(f"moderated|{o}", 0) for hour in counts] for o in ("approved", "rejected")
        },
        "reported": [hour.get("reported", 0) for hour in counts],
        "reports": [hour.get("reports", 0) for hour in counts],
    }


def _prefixed_totals(counts: list[dict[str, int]], prefix: str) -> dict[str, int]:
    totals: dict[str, int] = {}
    for hour in counts:
        for key, value in hour.items():
            if key.startswith(prefix):
                name = key.removeprefix(prefix)
                totals[name] = totals.get(name, 0) + value
    return dict(sorted(totals.items(), key=lambda item: (-item[1], item[0])))


def _overturns(counts: list[dict[str, int]]) -> dict[str, dict[str, Any]]:
    reviewed = _prefixed_totals(counts, "reviewed|")
    overturned = _prefixed_totals(counts, "overturned|")
    return {
        label: {
            "reviewed": seen,
            "overturned": overturned.get(label, 0),
            "rate": overturned.get(label, 0) / seen if seen else None,
        }
        for label, seen in reviewed.items()
    }


def _totals(per_hour: dict[str, Any], counts: list[dict[str, int]]) -> dict[str, int]:
    """The window's totals; `reviewed` and `overturned` count moderators' decisions (one
    each, however many labels the automatic decision named)."""
    outcomes, moderated = per_hour["outcomes"], per_hour["moderated"]
    return {
        "submitted": sum(per_hour["submitted"]),
        **{outcome: sum(outcomes[outcome]) for outcome in OUTCOMES},
        "moderated": sum(moderated["approved"]) + sum(moderated["rejected"]),
        "moderator_approved": sum(moderated["approved"]),
        "moderator_rejected": sum(moderated["rejected"]),
        "reported": sum(per_hour["reported"]),
        "reports": sum(per_hour["reports"]),
        "reviewed": sum(hour.get("reviewed", 0) for hour in counts),
        "overturned": sum(hour.get("overturned", 0) for hour in counts),
    }


def _age(oldest: float | None, at: float) -> float | None:
    return None if oldest is None else round(max(0.0, at - oldest), 1)


def _queue_series(
    buckets: dict[str, list[dict[str, str]]],
    queues: dict[str, tuple[int, float | None]],
    window: list[int],
    now: float,
) -> tuple[list[int | None], list[float | None]]:
    """The held queue at the end of each hour (now, for the current one), all sites together:
    its size and its oldest comment's age. An hour with no change keeps the state the last
    change left; hours before the window's first change take the state it started from."""
    sizes: list[list[int]] = []
    oldests: list[list[float | None]] = []
    for site, hours in buckets.items():
        size_now, oldest_now = queues[site]
        states = _site_states(hours, (size_now, oldest_now))
        sizes.append([state[0] for state in states])
        oldests.append([state[1] for state in states])
    size_series: list[int | None] = []
    age_series: list[float | None] = []
    for index, hour in enumerate(window):
        end = min(now, (hour + 1) * 3600)
        size_series.append(sum(site[index] for site in sizes) if sizes else None)
        known = [age for site in oldests if (age := site[index]) is not None]
        age_series.append(_age(min(known), end) if known else None)
    return size_series, age_series


def _site_states(
    hours: list[dict[str, str]], current: tuple[int, float | None]
) -> list[tuple[int, float | None]]:
    """One site's (queue size, oldest submission time) at the end of each hour."""
    first = next((i for i, fields in enumerate(hours) if "queue" in fields), None)
    if first is None:  # nothing changed in the window: the state now is the state throughout
        return [current] * len(hours)
    state = (int(hours[first]["queue_start"]), _time(hours[first]["oldest_start"]))
    states = []
    for fields in hours:
        if "queue" in fields:
            state = (int(fields["queue"]), _time(fields["oldest"]))
        states.append(state)
    return states


def _time(raw: str) -> float | None:
    return float(raw) if raw and math.isfinite(float(raw)) else None
