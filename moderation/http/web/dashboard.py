"""/moderate/dashboard: the moderation lead's charts, summary numbers and tables.

`services().stats.read()` gives the counters (moderation/storage/hourly_stats.py); `present` turns
them into what the page shows: the summary, the series each chart draws and the tables under
the charts, all from one reading. The template renders the summary and tables (the page
works without JavaScript); dashboard.js draws the charts from the same data, embedded in the
page, and refreshes everything from `dashboard.json` while the page is visible.

Windows are 24 hours, 7 days or 30 days. `dashboard.json` refuses any other `hours` (422)
and a site the moderator is not assigned to (403); the page, like the queue's filters,
ignores a window or site that is not on offer and shows the default instead.
30-day windows are charted per UTC day (counts summed, the queue at its daily peak).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from flask import current_app, render_template, request, url_for

from moderation.http.app_services import services
from moderation.http.errors import ApiError
from moderation.http.web.cards import label_name
from moderation.http.web.login import current_moderator, json_login_required, page_login_required
from moderation.http.web.views import blp
from moderation.storage.moderator_store import Moderator

#: The windows on offer, in hours, and how the page names them.
WINDOWS: dict[int, str] = {24: "24 hours", 168: "7 days", 720: "30 days"}
DEFAULT_HOURS = 24
#: Windows at least this long are charted per UTC day rather than per hour.
DAILY_FROM_HOURS = 720
#: How often the open page re-reads the numbers (app.config MODERATE_DASHBOARD_POLL_SECONDS).
POLL_SECONDS = 30

#: The per-hour series of the first chart and its table: (key, column heading).
OUTCOME_COLUMNS = (
    ("submitted", "Submitted"),
    ("approved", "Approved"),
    ("held", "Held"),
    ("rejected", "Rejected"),
    ("moderator_approved", "Moderator approved"),
    ("moderator_rejected", "Moderator rejected"),
    ("reported", "Reported"),
)
#: What a number that is unknown, or a rate of nothing, shows.
NOTHING = "\N{EN DASH}"
#: The totals the summary shows as they are.
COUNTED = ("submitted", "approved", "held", "rejected", "moderated", "reported")
#: How the overturn chart names an automatic decision that is not a label.
DECISION_NAMES = {"approved": "Approved automatically", "rejected": "Rejected automatically"}

Series = list[float | None]
Groups = list[tuple[str, list[int]]]


# --- the request -----------------------------------------------------------------------------


def requested_hours(strict: bool) -> int:
    """The `hours` asked for; an unknown window is a 422 when `strict`, else the default."""
    raw = request.args.get("hours") or None
    if raw is None:
        return DEFAULT_HOURS
    hours = int(raw) if raw.isascii() and raw.isdigit() else None
    if hours in WINDOWS:
        return hours
    if strict:
        offered = ", ".join(str(h) for h in WINDOWS)
        raise ApiError(422, "Unknown window.", fields={"hours": [f"One of {offered}."]})
    return DEFAULT_HOURS


def requested_site(moderator: Moderator, strict: bool) -> tuple[list[str], str | None]:
    """The moderator's sites and the `site` asked for (None: all of them).

    A site that is not theirs is a 403 when `strict` (`visible_sites` refuses it), and one
    that does not exist a 404; the page ignores both.
    """
    mine = services().review.visible_sites(moderator)
    site = request.args.get("site") or None
    if strict and site is not None and site not in mine:
        services().review.visible_sites(moderator, site)  # 403 unless theirs
        raise ApiError(404, f"No site {site!r}.")
    return mine, site if site in mine else None


def dashboard_data(sites: list[str], site: str | None, hours: int) -> dict[str, Any]:
    """One reading of the counters, and how the page shows it."""
    stats = services().stats.read([site] if site else sites, hours)
    return {"stats": stats, "view": present(stats, site, hours)}


# --- routes ----------------------------------------------------------------------------------


@blp.route("/dashboard")
@page_login_required
def dashboard() -> str:
    moderator = current_moderator()
    sites, site = requested_site(moderator, strict=False)
    hours = requested_hours(strict=False)
    return render_template(
        "moderate/dashboard.html",
        moderator=moderator,
        sites=sites,
        site=site,
        hours=hours,
        windows=WINDOWS,
        data=dashboard_data(sites, site, hours),
        poll_seconds=current_app.config.get("MODERATE_DASHBOARD_POLL_SECONDS", POLL_SECONDS),
    )


@blp.route("/dashboard.json")
@json_login_required
def dashboard_json() -> dict[str, Any]:
    """`{"stats": <DashboardStats.read()>, "view": <present()>}` for `site` and `hours`."""
    moderator = current_moderator()
    sites, site = requested_site(moderator, strict=True)
    hours = requested_hours(strict=True)
    return dashboard_data(sites, site, hours) | {"page": page_url(site, hours)}


def page_url(site: str | None, hours: int) -> str:
    """The page's own URL for this selection (the script keeps the address bar on it)."""
    args: dict[str, Any] = {"site": site} if site else {}
    if hours != DEFAULT_HOURS:
        args["hours"] = hours
    return url_for("moderate.dashboard", **args)


# --- presenting ------------------------------------------------------------------------------


def present(stats: Mapping[str, Any], site: str | None, hours: int) -> dict[str, Any]:
    """The summary, each chart's series and each table, from one `read()` result."""
    daily = hours >= DAILY_FROM_HOURS
    groups = group_buckets(stats["buckets"], daily)
    outcomes = outcome_series(stats, groups)
    queue = queue_series(stats["queue"], groups)
    reasons = reason_series(stats["held_by_reason"])
    overturns = overturn_series(stats["overturns"])
    return {
        "title": f"{site or 'All my sites'} · last {WINDOWS.get(hours, f'{hours} hours')}",
        "step": "day" if daily else "hour",
        "summary": summary(stats),
        "outcomes": outcomes,
        "queue": queue,
        "reasons": reasons,
        "overturns": overturns,
        "tables": {
            "outcomes": outcome_table(outcomes, daily),
            "queue": queue_table(queue, daily),
            "reasons": reason_table(reasons),
            "overturns": overturn_table(overturns),
        },
    }


def group_buckets(buckets: Sequence[str], daily: bool) -> Groups:
    """(label, bucket indexes) per chart step: each hour, or each UTC day."""
    groups: Groups = []
    for index, iso in enumerate(buckets):
        moment = datetime.strptime(iso, "%Y-%m-%dT%H:%M:%SZ")
        label = f"{moment.day} {moment:%b}" if daily else f"{moment.day} {moment:%b %H:%M}"
        if groups and groups[-1][0] == label:
            groups[-1][1].append(index)
        else:
            groups.append((label, [index]))
    return groups


def summed(series: Sequence[float | None], groups: Groups) -> Series:
    return [sum(series[i] or 0 for i in indexes) for _, indexes in groups]


def peak(series: Sequence[float | None], groups: Groups) -> Series:
    """The largest known value of each group (None where none is known)."""
    peaks: Series = []
    for _, indexes in groups:
        known = [value for i in indexes if (value := series[i]) is not None]
        peaks.append(max(known, default=None))
    return peaks


def outcome_series(stats: Mapping[str, Any], groups: Groups) -> dict[str, Any]:
    hourly = {
        "submitted": stats["submitted"],
        "approved": stats["outcomes"]["approved"],
        "held": stats["outcomes"]["held"],
        "rejected": stats["outcomes"]["rejected"],
        "moderator_approved": stats["moderated"]["approved"],
        "moderator_rejected": stats["moderated"]["rejected"],
        "reported": stats["reported"],
    }
    series = {key: summed(values, groups) for key, values in hourly.items()}
    return {"labels": [label for label, _ in groups], "series": series}


def queue_series(queue: Mapping[str, Any], groups: Groups) -> dict[str, Any]:
    ages = peak(queue["oldest_age_seconds"], groups)
    return {
        "labels": [label for label, _ in groups],
        "size": peak(queue["size"], groups),
        "oldest_seconds": ages,
        "oldest_minutes": [None if age is None else round(age / 60, 1) for age in ages],
    }


def reason_series(held_by_reason: Mapping[str, int]) -> dict[str, Any]:
    """The reasons, most frequent first."""
    keys = sorted(held_by_reason, key=lambda key: (-held_by_reason[key], key))
    return {
        "keys": keys,
        "labels": [label_name(key) for key in keys],
        "values": [held_by_reason[key] for key in keys],
    }


def overturn_series(overturns: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """Per label the automatic decision named: reviewed, overturned and the rate in percent."""
    keys = sorted(overturns, key=lambda key: (-overturns[key]["reviewed"], key))
    rates = [overturns[key]["rate"] for key in keys]
    return {
        "keys": keys,
        "labels": [DECISION_NAMES.get(key, label_name(key)) for key in keys],
        "reviewed": [overturns[key]["reviewed"] for key in keys],
        "overturned": [overturns[key]["overturned"] for key in keys],
        "percent": [None if rate is None else round(rate * 100, 1) for rate in rates],
    }


# --- the summary and tables (text, as shown) -------------------------------------------------


def count_text(value: float | None) -> str:
    return NOTHING if value is None else f"{value:,.0f}"


def duration_text(seconds: float | None) -> str:
    """812.0 -> `13 min`; None (nothing waiting, or unknown) -> NOTHING."""
    if seconds is None:
        return NOTHING
    minutes = int(seconds // 60)
    if minutes < 1:
        return f"{int(seconds)} s"
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h" if hours else f"{days} d"


def percent_text(part: int, whole: int) -> str:
    return NOTHING if not whole else f"{part / whole:.0%}"


def stat(value: float | None, text: str, detail: str = "") -> dict[str, Any]:
    return {"value": value, "text": text, "detail": detail}


def summary(stats: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """The numbers on top, by the `data-stat` name the page gives each."""
    totals, now = stats["totals"], stats["queue"]["now"]
    reviewed, overturned = totals["reviewed"], totals["overturned"]
    counts = {key: stat(totals[key], count_text(totals[key])) for key in COUNTED}
    return counts | {
        "queue_size": stat(now["size"], count_text(now["size"])),
        "oldest_waiting": stat(now["oldest_age_seconds"], duration_text(now["oldest_age_seconds"])),
        "overturn_rate": stat(
            overturned / reviewed if reviewed else None,
            percent_text(overturned, reviewed),
            f"{overturned:,} of {reviewed:,} reviewed",
        ),
    }


def table(
    head: Iterable[str], rows: Iterable[Iterable[Any]], foot: Iterable[Any] = ()
) -> dict[str, list[Any]]:
    """A table as text cells; the first cell of each row names the row."""
    return {
        "head": list(head),
        "rows": [[str(cell) for cell in row] for row in rows],
        "foot": [str(cell) for cell in foot],
    }


def outcome_table(outcomes: Mapping[str, Any], daily: bool) -> dict[str, Any]:
    series = outcomes["series"]
    columns = [series[key] for key, _ in OUTCOME_COLUMNS]
    rows = (
        [label, *(count_text(values[i]) for values in columns)]
        for i, label in enumerate(outcomes["labels"])
    )
    foot = ["Total", *(count_text(sum(v or 0 for v in values)) for values in columns)]
    first = "Day (UTC)" if daily else "Hour (UTC)"
    return table([first, *(name for _, name in OUTCOME_COLUMNS)], rows, foot)


def queue_table(queue: Mapping[str, Any], daily: bool) -> dict[str, Any]:
    rows = (
        [label, count_text(size), duration_text(age)]
        for label, size, age in zip(
            queue["labels"], queue["size"], queue["oldest_seconds"], strict=True
        )
    )
    if daily:
        return table(["Day (UTC)", "In the queue (peak)", "Oldest waiting (peak)"], rows)
    return table(["Hour (UTC)", "In the queue", "Oldest waiting"], rows)


def reason_table(reasons: Mapping[str, Any]) -> dict[str, Any]:
    """No total: one comment can be held for several reasons."""
    rows = zip(reasons["labels"], map(count_text, reasons["values"]), strict=True)
    return table(["Reason", "Comments"], rows)


def overturn_table(overturns: Mapping[str, Any]) -> dict[str, Any]:
    rows = (
        [label, f"{reviewed:,}", f"{overturned:,}", percent_text(overturned, reviewed)]
        for label, reviewed, overturned in zip(
            overturns["labels"], overturns["reviewed"], overturns["overturned"], strict=True
        )
    )
    return table(["Automatic decision", "Reviewed", "Overturned", "Overturn rate"], rows)
