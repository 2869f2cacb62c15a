"""Review items as the page shows them: one dict per card, used by the template and the JS.

Everything here is data; escaping is the template's (autoescape) and the script's
(textContent) job. Links are kept only when they are plain http(s) URLs.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

SAFE_SCHEMES = ("http", "https")
HISTORY_STATUSES = ("approved", "held", "rejected")
STANDINGS = ("banned", "premoderated", "trusted")
#: Up to this many of the author's recent comments show unfolded; more fold into <details>.
RECENT_OPEN = 2
#: Readers' notes a card quotes at most.
REPORT_NOTES = 5

#: What a mark in the text says drove the decision: its class suffix -> the legend's words.
MARK_KINDS = {
    "toxicity": "toxic sentence",
    "banned": "banned word",
    "suspect": "suspect word",
    "spam": "spam phrase",
    "link": "link",
}
#: Which mark wins when two start at the same character (the longer next).
MARK_PRIORITY = {kind: rank for rank, kind in enumerate(MARK_KINDS)}
LINKS_REASON = re.compile(r"\d+ links? > \d+ allowed")
LINK = re.compile(r"(?:https?://|www\.)[^\s<>\"']*[^\s<>\"'.,;:!?)\]}]", re.IGNORECASE)


@dataclass(frozen=True)
class PolicyWords:
    """A site policy's word lists, as the page marks them in a comment."""

    banned: tuple[str, ...] = ()
    suspect: tuple[str, ...] = ()


NO_WORDS = PolicyWords()


@dataclass(frozen=True, order=True)
class Mark:
    """A stretch of the comment to mark: [start, end) and why."""

    start: int
    rank: int
    length: int
    kind: str
    label: str
    title: str
    driver: bool = False  # words that drove a learned score (quoted in the reasons too)

    @classmethod
    def of(
        cls, start: int, end: int, kind: str, label: str, title: str, driver: bool = False
    ) -> Mark:
        return cls(start, MARK_PRIORITY[kind], -(end - start), kind, label, title, driver)

    @property
    def classes(self) -> str:
        return f"mark mark-{self.kind}" + (" driver" if self.driver else "")

    @property
    def end(self) -> int:
        return self.start - self.length


# --- small values ------------------------------------------------------------------------------


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


def plural(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


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


# --- marks in the text ----------------------------------------------------------------------------


def _span_rows(rows: Any, length: int) -> list[tuple[int, int, float]]:
    """`[[begin, end, score], ...]` as checked integer offsets into a text of `length`."""
    found = []
    for row in rows if isinstance(rows, list) else []:
        try:
            begin, end, score = int(row[0]), int(row[1]), float(row[2])
        except (TypeError, ValueError, IndexError):
            continue
        if 0 <= begin < end <= length:
            found.append((begin, end, score))
    return found


def _driving_sentences(
    rows: list[tuple[int, int, float]], threshold: float | None
) -> list[tuple[int, int, float]]:
    """The sentences at or past the hold threshold; when none is, the highest-scoring one."""
    over = [row for row in rows if threshold is not None and row[2] >= threshold]
    return over or [max(rows, key=lambda row: row[2])]


def toxicity_marks(
    content: str, spans: Mapping[str, Any], thresholds: Mapping[str, float]
) -> list[Mark]:
    """One mark per sentence that drove a toxicity label (several labels: one mark, one title)."""
    said: dict[tuple[int, int], list[str]] = {}
    for label, rows in spans.items():
        checked = _span_rows(rows, len(content))
        if not checked:
            continue
        for begin, end, score in _driving_sentences(checked, thresholds.get(label)):
            said.setdefault((begin, end), []).append(f"{label_name(label)} {score:.2f}")
    return [
        Mark.of(begin, end, "toxicity", "toxicity", f"{', '.join(scores)} (this sentence alone)")
        for (begin, end), scores in said.items()
    ]


def phrase_marks(content: str, highlights: Mapping[str, Sequence[str]]) -> list[Mark]:
    """The phrases that drove a learned score, wherever they stand (any case)."""
    return [
        Mark.of(
            match.start(),
            match.end(),
            "spam" if label == "spam" else "toxicity",
            label,
            f"drove the {label_name(label)} score",
            driver=True,
        )
        for label, phrases in highlights.items()
        for phrase in phrases
        if phrase
        for match in re.finditer(re.escape(phrase), content, re.IGNORECASE)
    ]


def _literal(entry: str) -> re.Pattern[str]:
    """An entry found in any case, not inside a longer Latin word ("ass" is not in "class")."""
    head = r"(?<![A-Za-z0-9])" if entry[0].isascii() and entry[0].isalnum() else ""
    tail = r"(?![A-Za-z0-9])" if entry[-1].isascii() and entry[-1].isalnum() else ""
    return re.compile(head + re.escape(entry) + tail, re.IGNORECASE)


def word_marks(content: str, words: PolicyWords) -> list[Mark]:
    """The policy's banned and suspect words where they occur in the text."""
    marks = []
    for kind, entries in (("banned", words.banned), ("suspect", words.suspect)):
        for entry in (e.strip() for e in entries):
            if entry:
                marks += [
                    Mark.of(m.start(), m.end(), kind, kind, f'{kind} word "{entry}"')
                    for m in _literal(entry).finditer(content)
                ]
    return marks


def link_marks(content: str, reasons: Iterable[str]) -> list[Mark]:
    """The links of the text, when a reason says it has too many."""
    said = next((r for r in reasons if LINKS_REASON.search(r)), None)
    if said is None:
        return []
    return [Mark.of(m.start(), m.end(), "link", "link", said) for m in LINK.finditer(content)]


def _part(text: str, mark: Mark | None = None) -> dict[str, str]:
    if mark is None:
        return {"text": text, "label": ""}
    return {
        "text": text,
        "label": mark.label,
        "kind": mark.kind,
        "class": mark.classes,
        "title": mark.title,
    }


def split_marked(content: str, marks: Iterable[Mark]) -> list[dict[str, str]]:
    """The text in pieces; where marks overlap the first-starting wins (never nested), and a
    later mark keeps only what runs past it."""
    parts: list[dict[str, str]] = []
    position = 0
    for mark in sorted(marks):
        if mark.end <= position:
            continue
        start = max(mark.start, position)
        if start > position:
            parts.append(_part(content[position:start]))
        parts.append(_part(content[start : mark.end], mark))
        position = mark.end
    if position < len(content) or not parts:
        parts.append(_part(content[position:]))
    return parts


def content_parts(
    content: str,
    highlights: Mapping[str, Sequence[str]],
    *,
    spans: Mapping[str, Any] | None = None,
    thresholds: Mapping[str, float] | None = None,
    words: PolicyWords = NO_WORDS,
    reasons: Sequence[str] = (),
) -> list[dict[str, str]]:
    """The comment in pieces, each `{"text", "label"}` (`label` "" for unmarked text); a marked
    piece also has `kind` (toxicity, banned, suspect, spam, link), `class` (its mark's classes)
    and `title`.

    Marked: the sentences that drove a toxicity label (`spans`, against `thresholds`), the
    phrases that drove a learned score (`highlights`, any case), the policy's banned and
    suspect words, and the links when a reason says there are too many."""
    marks = [
        *toxicity_marks(content, spans or {}, thresholds or {}),
        *phrase_marks(content, highlights),
        *word_marks(content, words),
        *link_marks(content, reasons),
    ]
    return split_marked(content, marks)


def legend(parts: Iterable[Mapping[str, str]]) -> list[dict[str, str]]:
    """The kinds of mark the text has, in the legend's order."""
    kinds = {part.get("kind", "") for part in parts}
    return [{"kind": kind, "name": name} for kind, name in MARK_KINDS.items() if kind in kinds]


# --- context ------------------------------------------------------------------------------------


def standing_badge(standing: Mapping[str, Any] | None) -> dict[str, str] | None:
    """What moderators said about the author, as the badge beside their name (None: nothing)."""
    if not standing or standing.get("standing") not in STANDINGS:
        return None
    kind = str(standing["standing"])
    title = kind.capitalize()
    if standing.get("by"):
        title += f" by {standing['by']}"
    if standing.get("at"):
        title += f", {time_label(str(standing['at']))}"
    if standing.get("note"):
        title += f": {standing['note']}"
    return {"standing": kind, "label": kind, "title": title}


def glance_card(glance: Mapping[str, Any]) -> dict[str, str]:
    """Another comment in a line (the parent of a reply, one of the author's recent ones)."""
    submitted = str(glance.get("submitted_at", ""))
    status = str(glance.get("status", ""))
    return {
        "id": str(glance.get("id", "")),
        "status": status,
        "author": str(glance.get("author_name") or "Anonymous"),
        "excerpt": str(glance.get("content", "")),
        "submitted_at": submitted,
        "when": time_label(submitted),
        "reasons": "; ".join(glance.get("reasons") or []),
    }


def report_summary(reports: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """Readers' open reports in brief: how many, the reasons with counts, their notes."""
    count = int((reports or {}).get("open", 0) or 0)
    if not reports or count <= 0:
        return None
    reasons = sorted((reports.get("reasons") or {}).items(), key=lambda kv: (-kv[1], kv[0]))
    notes = [
        {
            "reporter": str(each.get("reporter", "")),
            "reason": label_name(str(each.get("reason", ""))),
            "note": str(each["note"]),
        }
        for each in reports.get("items") or []
        if each.get("note")
    ]
    return {
        "open": count,
        "title": f"Reported by {plural(count, 'reader')}",
        "reasons": [{"name": label_name(name), "count": n} for name, n in reasons],
        "notes": notes[:REPORT_NOTES],
    }


# --- the card ------------------------------------------------------------------------------------


def author_part(site: str, author: Mapping[str, Any], standing: Any) -> dict[str, Any]:
    email, ip = author.get("email", ""), author.get("ip", "")
    author_id = author.get("id", "")
    return {
        "name": author.get("name") or author_id or "Anonymous",
        "id": author_id,
        "key": f"{site}/{author_id}" if author_id else "",
        "email": email,
        "ip": ip,
        "meta": " · ".join(part for part in (email, ip) if part),
        "user_agent": author.get("user_agent", ""),
        "url": safe_url(author.get("url")),
        "standing": standing_badge(standing),
    }


def post_part(context: Mapping[str, Any]) -> dict[str, Any]:
    post_id, parent_id = context.get("post_id", ""), context.get("parent_id", "")
    return {
        "id": post_id,
        "permalink": safe_url(context.get("permalink")),
        "parent_id": parent_id,
        "label": f"post {post_id}" if post_id else "",
        "reply_label": f"reply to {parent_id}" if parent_id else "",
    }


def decided_label(status: str, decided_by: str) -> str:
    """`approved automatically`, `rejected by moderator:ann`; "" before any decision."""
    if not status or not decided_by:
        return ""
    return f"{status} {'automatically' if decided_by == 'auto' else f'by {decided_by}'}"


def card(
    item: Mapping[str, Any], thresholds: Mapping[str, float], words: PolicyWords = NO_WORDS
) -> dict[str, Any]:
    """A review item (see ReviewItemSchema) as a card."""
    decision = item.get("decision") or {}
    history = item.get("author_history") or {}
    reasons = list(decision.get("reasons") or [])
    content = item.get("content", "")
    parts = content_parts(
        content,
        item.get("highlights") or {},
        spans=item.get("spans") or {},
        thresholds=thresholds,
        words=words,
        reasons=reasons,
    )
    recent = [glance_card(each) for each in item.get("author_recent") or []]
    parent = item.get("parent")
    return {
        "key": f"{item['site']}/{item['id']}",
        "site": item["site"],
        "id": item["id"],
        "status": item.get("status", ""),
        "content": content,
        "content_parts": parts,
        "marks": legend(parts),
        "submitted_at": item.get("submitted_at", ""),
        "submitted_label": time_label(item.get("submitted_at", "")),
        "author": author_part(item["site"], item.get("author") or {}, item.get("author_standing")),
        "post": post_part(item.get("context") or {}),
        "parent": glance_card(parent) if parent else None,
        "recent": recent,
        "recent_open": len(recent) <= RECENT_OPEN,
        "reports": report_summary(item.get("reports")),
        "scores": score_bars(decision.get("scores") or {}, thresholds),
        "reasons": reasons,
        "history": {status: int(history.get(status, 0)) for status in HISTORY_STATUSES},
        "decided_by": decision.get("decided_by", ""),
        "decided": decided_label(item.get("status", ""), decision.get("decided_by", "")),
    }


def blank_card() -> dict[str, Any]:
    """The empty card the page keeps in a <template> for the script to clone."""
    urls = {"decide": "", "audit": "", "author": ""}
    return card({"site": "", "id": ""}, {}) | {"key": "", "urls": urls}
