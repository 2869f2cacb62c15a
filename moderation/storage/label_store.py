"""Labels: what a site's people said about its comments, kept to train the site's own models.

A label is a text and its kind:

| kind    | from                                                                                  |
|---------|---------------------------------------------------------------------------------------|
| `spam`  | a moderator rejecting it as spam; Akismet `submit-spam`                               |
| `toxic` | a moderator rejecting it as abuse; a Perspective suggestion of 0.5 or more            |
| `ok`    | a moderator approving it; Akismet `submit-ham`; a Perspective suggestion below 0.5    |
| `other` | a moderator rejecting it for another reason (off topic, ...): neither model learns it |

Labels live in one Redis stream per site, with the comment's scores and the toxicity model
that gave them (the site toxicity model learns from those), counts per kind, and a version that
every change bumps: the learning job compares it with the version it last trained on. A
comment has at most one label (a later decision replaces it), and erasing the comment removes
it (`CommentStore.erase`). Test submissions (`is_test`) are never labels.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, cast

import redis

from moderation.core.records import Action, Comment, Decision
from moderation.core.redis_keys import KEYS
from moderation.core.rules import ReasonKind, reason_kind

#: At most this many labels are kept per site (the oldest go first).
MAX_LABELS = 1_000_000


class LabelKind(StrEnum):
    SPAM = "spam"
    TOXIC = "toxic"
    OK = "ok"
    OTHER = "other"


@dataclass(frozen=True)
class Label:
    """One label as stored; `id` is its stream id (also its arrival order)."""

    id: str
    kind: LabelKind
    text: str
    source: str
    comment: str = ""  # the comment it labels, "" for a text with no comment (Akismet, ...)
    scores: dict[str, float] = field(default_factory=dict)
    toxicity_model: str = ""  # the model that gave `scores`


#: A Lua function for the scripts that remove a comment's label (here, and the erasure in
#: `moderation.storage.comment_store`): deletes label `id` from `stream` and counts it out of
#: `stats` by kind. Returns whether there was such a label.
FORGET_LABEL_LUA = """
local function forget_label(stream, stats, id)
  local entries = redis.call('XRANGE', stream, id, id)
  if #entries == 0 then return false end
  local fields = entries[1][2]
  for i = 1, #fields, 2 do
    if fields[i] == 'kind' then redis.call('HINCRBY', stats, fields[i + 1], -1) end
  end
  redis.call('XDEL', stream, id)
  return true
end
"""

# Adds a label and counts it. KEYS: labels stream, stats hash, metric counters, and for a
# stored comment its hash (its earlier label, if any, is replaced). ARGV: max length, kind, then
# the entry's fields as name, value pairs. Returns the new label's id.
_ADD_LABEL_SCRIPT = (
    FORGET_LABEL_LUA
    + """
local comment = KEYS[4]
if comment then
  local old = redis.call('HGET', comment, 'example_id')
  if old then forget_label(KEYS[1], KEYS[2], old) end
end
local id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*', unpack(ARGV, 3))
if comment then redis.call('HSET', comment, 'example_id', id) end
redis.call('HINCRBY', KEYS[2], ARGV[2], 1)
redis.call('HINCRBY', KEYS[2], 'version', 1)
redis.call('HINCRBY', KEYS[3], 'labels|' .. ARGV[2], 1)
return id
"""
)


def kind_of_decision(
    action: Action, before: Decision | None, said: LabelKind | None = None
) -> LabelKind:
    """The label a moderator's approve or reject amounts to.

    An approval is `ok`. A rejection is what the moderator said (`said`), else what the comment
    was held for: spam (a spam score, the honeypot, too many links) or abuse (a toxicity label,
    a banned word); a comment held for neither, or approved until the moderator overturned it,
    counts as whichever of its spam and toxicity scores is higher.
    """
    if action is Action.APPROVE:
        return LabelKind.OK
    if said is not None:
        return said
    if before is None:
        return LabelKind.OTHER
    kinds = {reason_kind(reason) for reason in before.reasons}
    if ReasonKind.SPAM in kinds:
        return LabelKind.SPAM
    if kinds & {ReasonKind.TOXICITY, ReasonKind.BANNED}:
        return LabelKind.TOXIC
    if not before.scores:
        return LabelKind.OTHER
    spam, toxicity = before.scores.get("spam", 0.0), before.scores.get("toxicity", 0.0)
    return LabelKind.SPAM if spam >= toxicity else LabelKind.TOXIC


class LabelStore:
    """Adds, reads and counts a site's labels. `on_change(site)` runs after each new label
    (the service queues the site's retraining there)."""

    def __init__(
        self, connection: redis.Redis, on_change: Callable[[str], object] | None = None
    ) -> None:
        self.redis = connection
        self.on_change = on_change or (lambda site: None)
        self._add_label = connection.register_script(_ADD_LABEL_SCRIPT)

    # --- adding -----------------------------------------------------------------------------

    def label_comment(self, comment: Comment, kind: LabelKind, source: str) -> str | None:
        """Label a stored comment (replacing its earlier label); None for an erased one."""
        if comment.erased_at is not None or comment.is_check:
            return None
        model, scores = comment.decision.model_scores() if comment.decision else ("", {})
        fields = _fields(
            kind,
            comment.submission.content,
            source,
            comment=comment.id,
            scores=scores,
            toxicity_model=model,
        )
        return self._add(comment.site, kind, fields, KEYS.comment(comment.site, comment.id))

    def label_text(
        self,
        site: str,
        text: str,
        kind: LabelKind,
        source: str,
        details: Mapping[str, Any] | None = None,
    ) -> str:
        """Label a text that is no stored comment (Akismet's submissions, Perspective's
        suggestions); `details` are kept with it as they are. Returns its id."""
        fields = _fields(kind, text, source)
        if details:
            fields += ["details", json.dumps(dict(details))]
        return self._add(site, kind, fields)

    def _add(self, site: str, kind: LabelKind, fields: list[str], comment_key: str = "") -> str:
        """Store and count one label (for the comment at `comment_key`, if any); its id."""
        keys = [KEYS.labels(site), KEYS.label_stats(site), KEYS.metric_counters]
        label_id = self._add_label(
            keys=keys + ([comment_key] if comment_key else []),
            args=[MAX_LABELS, kind.value, *fields],
        )
        self.on_change(site)
        return label_id.decode() if isinstance(label_id, bytes) else str(label_id)

    # --- reading ----------------------------------------------------------------------------

    def recent(self, site: str, limit: int) -> list[Label]:
        """The site's newest `limit` labels, oldest first."""
        entries = cast(
            list[tuple[bytes, dict[bytes, bytes]]],
            self.redis.xrevrange(KEYS.labels(site), count=limit),
        )
        return [_label(entry_id, fields) for entry_id, fields in reversed(entries)]

    def counts(self, site: str) -> dict[str, int]:
        """Labels per kind (as counted when they came and went)."""
        stats = cast(dict[bytes, bytes], self.redis.hgetall(KEYS.label_stats(site)))
        return {kind.value: max(0, int(stats.get(kind.value.encode(), 0))) for kind in LabelKind}

    def set_counts(self, site: str, counts: Mapping[str, int]) -> None:
        """Correct the counts from a full reading of the labels (the trainer does this)."""
        self.redis.hset(KEYS.label_stats(site), mapping=dict(counts))

    def version(self, site: str) -> int:
        return int(cast(bytes | None, self.redis.hget(KEYS.label_stats(site), "version")) or 0)

    def trained_version(self, site: str) -> int:
        return int(cast(bytes | None, self.redis.hget(KEYS.label_stats(site), "trained")) or 0)

    def mark_trained(self, site: str, version: int) -> None:
        self.redis.hset(KEYS.label_stats(site), "trained", str(version))

    def untrained_sites(self, sites: list[str]) -> list[str]:
        """Those of `sites` whose labels changed since their models were last trained."""
        with self.redis.pipeline(transaction=False) as pipe:
            for site in sites:
                pipe.hmget(KEYS.label_stats(site), ["version", "trained"])
            replies = pipe.execute()
        return [
            site
            for site, (version, trained) in zip(sites, replies, strict=True)
            if int(version or 0) > int(trained or 0)
        ]


class TrainingLock:
    """One process at a time retrains a site's models (others find it taken and leave it: the
    holder looks for newer labels when it is done)."""

    # Deletes the lock only if it is still ours (it may have expired and been taken since).
    _RELEASE = "if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end"

    def __init__(self, connection: redis.Redis, site: str, holder: str, ttl: int) -> None:
        self.redis = connection
        self.key = KEYS.learning_lock(site)
        self.holder = holder
        self.ttl = ttl

    def acquire(self) -> bool:
        return bool(self.redis.set(self.key, self.holder, nx=True, ex=self.ttl))

    def release(self) -> None:
        self.redis.eval(self._RELEASE, 1, self.key, self.holder)


class LabelScores:
    """The toxicity model's scores of labels that came without them (an Akismet or Perspective
    text), kept once computed so that the next training need not score them again."""

    def __init__(self, connection: redis.Redis, site: str, model: str) -> None:
        self.redis, self.key, self.model = connection, KEYS.label_scores(site), model

    def get(self, label_ids: list[str]) -> dict[str, dict[str, float]]:
        if not label_ids:
            return {}
        found = {}
        kept_raw = cast(list[bytes | None], self.redis.hmget(self.key, label_ids))
        for label_id, raw in zip(label_ids, kept_raw, strict=True):
            kept = json.loads(raw) if raw else None
            if kept and kept.get("model") == self.model:
                found[label_id] = kept["scores"]
        return found

    def put(self, scores: Mapping[str, Mapping[str, float]]) -> None:
        if scores:
            values = {
                k: json.dumps({"model": self.model, "scores": dict(v)}) for k, v in scores.items()
            }
            self.redis.hset(self.key, mapping=values)


def _fields(
    kind: LabelKind,
    text: str,
    source: str,
    *,
    comment: str = "",
    scores: Mapping[str, float] | None = None,
    toxicity_model: str = "",
) -> list[str]:
    """A label's stream fields as a flat name, value list."""
    values = {
        "kind": kind.value,
        "content": text,
        "source": source,
        "comment": comment,
        "scores": json.dumps(dict(scores or {})),
        "toxicity_model": toxicity_model,
    }
    return [item for pair in values.items() for item in pair]


#: How labels stored before they had a kind are read: by their old label and labeler.
_LEGACY_KINDS = {"spam": LabelKind.SPAM, "ham": LabelKind.OK, "approved": LabelKind.OK}


def _label(entry_id: bytes, raw: dict[bytes, bytes]) -> Label:
    fields = {key.decode(): value.decode() for key, value in raw.items()}
    source = fields.get("source") or fields.get("labeler", "")
    kind = fields.get("kind")
    if kind is None:  # stored before labels were learned from
        legacy = fields.get("label", "")
        perspective = source.startswith("perspective:")
        kind = LabelKind.TOXIC if legacy == "rejected" and perspective else LabelKind.OTHER
        kind = _LEGACY_KINDS.get(legacy, kind)
    try:
        scores = {k: float(v) for k, v in json.loads(fields.get("scores") or "{}").items()}
    except (ValueError, AttributeError, TypeError):
        scores = {}
    return Label(
        id=entry_id.decode(),
        kind=LabelKind(kind),
        text=fields.get("content", ""),
        source=source,
        comment=fields.get("comment", ""),
        scores=scores,
        toxicity_model=fields.get("toxicity_model", ""),
    )
