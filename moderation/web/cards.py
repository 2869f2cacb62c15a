"""Queue items as the page shows them: one dict per card, used by the template and the JS.

Everything here is data; escaping is the template's (autoescape) and the script's
(textContent) job. Links are kept only when they are plain http(s) URLs.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

SAFE_SCHEMES = ("http", "https")
HISTORY_STATUSES = ("approved", "held", "rejected")


def safe_url(value: Any) -> str | None:
    """`value` if it is an absolute http(s) URL (never javascript:, data: ...), else None."""
    if not isinstance(value, str):
        return None
    url = value.strip()
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    return url if parts.scheme.lower() in SAFE_SCHEMES and parts.netloc else None


def time_label(iso: str) -> str:
    """`2026-11-25T13:00:00Z` -> `25 Nov 2026, 13:00 UTC`."""
    try:
        moment = datetime.strptime(iso, "%Y-%m-%dT%H:%M:%SZ")
    except (TypeError, ValueError):
        return str(iso)
    return f"{moment.day} {moment:%b %Y, %H:%M} UTC"


def label_name(label: str) -> str:
    return label.replace("_", " ")


def score_bars(scores: Mapping[str, float], thresholds: Mapping[str, float]) -> list[dict]:
    """One bar per label: those at or past their hold threshold first, then by score."""
    bars = []
    for label, raw in scores.items():
        value = min(max(float(raw), 0.0), 1.0)
        threshold = thresholds.get(label)
        bars.append(
            {
                "label": label,
                "name": label_name(label),
                "value": value,
                "display": f"{value:.2f}",
                "percent": round(value * 100, 1),
                "threshold": threshold,
                "threshold_display": f"{threshold:.2f}" if threshold is not None else "",
                "threshold_percent": round(threshold * 100, 1) if threshold is not None else None,
                "over": threshold is not None and value >= threshold,
            }
        )
    return sorted(bars, key=lambda bar: (not bar["over"], -bar["value"], bar["label"]))


def content_parts(content: str, highlights: Mapping[str, list[str]]) -> list[dict[str, str]]:
    """The comment in pieces, each `{"text", "label"}`: `label` names the learned score a piece
    drove ("spam"), "" for the rest. Phrases are found case-insensitively; overlaps merge."""
    spans = [
        (match.start(), match.end(), label)
        for label, phrases in highlights.items()
        for phrase in phrases
        if phrase
        for match in re.finditer(re.escape(phrase), content, re.IGNORECASE)
    ]
    parts: list[dict[str, str]] = []
    position = 0
    for start, end, label in sorted(spans):
        if end <= position:
            continue
        start = max(start, position)
        if start > position:
            parts.append({"text": content[position:start], "label": ""})
        parts.append({"text": content[start:end], "label": label})
        position = end
    if position < len(content) or not parts:
        parts.append({"text": content[position:], "label": ""})
    return parts


def card(item: Mapping[str, Any], thresholds: Mapping[str, float]) -> dict[str, Any]:
    """A review item (record + site, content, author, context, author_history) as a card."""
    decision = item.get("decision") or {}
    author = item.get("author") or {}
    context = item.get("context") or {}
    history = item.get("author_history") or {}
    email, ip = author.get("email", ""), author.get("ip", "")
    post_id, parent_id = context.get("post_id", ""), context.get("parent_id", "")
    return {
        "key": f"{item['site']}/{item['id']}",
        "site": item["site"],
        "id": item["id"],
        "status": item.get("status", ""),
        "content": item.get("content", ""),
        "content_parts": content_parts(item.get("content", ""), item.get("highlights") or {}),
        "submitted_at": item.get("submitted_at", ""),
        "submitted_label": time_label(item.get("submitted_at", "")),
        "author": {
            "name": author.get("name") or author.get("id") or "Anonymous",
            "id": author.get("id", ""),
            "email": email,
            "ip": ip,
            "meta": " · ".join(part for part in (email, ip) if part),
            "user_agent": author.get("user_agent", ""),
            "url": safe_url(author.get("url")),
        },
        "post": {
            "id": post_id,
            "permalink": safe_url(context.get("permalink")),
            "parent_id": parent_id,
            "label": f"post {post_id}" if post_id else "",
            "reply_label": f"reply to {parent_id}" if parent_id else "",
        },
        "scores": score_bars(decision.get("scores") or {}, thresholds),
        "reasons": list(decision.get("reasons") or []),
        "history": {status: int(history.get(status, 0)) for status in HISTORY_STATUSES},
        "decided_by": decision.get("decided_by", ""),
    }


def blank_card() -> dict[str, Any]:
    """The empty card the page keeps in a <template> for the script to clone."""
    return card({"site": "", "id": ""}, {}) | {"key": "", "urls": {"decide": "", "audit": ""}}
