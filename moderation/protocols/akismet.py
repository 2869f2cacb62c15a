"""Akismet's protocol, without I/O: its form fields as a Submission, a decision as its answer,
and the account calls' answers (get-subscription, get-stats, key-sites, usage-limit).

Akismet answers `true`/`false` (spam or not) as text, with `X-akismet-pro-tip: discard` for
blatant spam and an `X-akismet-debug-help` header that explains an error.

The key comes in the form (`api_key`; the account calls send `key`) or, as most clients send
it, as the leftmost label of the host name: `https://KEY.rest.akismet.com/1.1/comment-check`
(Node's and Perl's clients, python-akismet, Ruby's, Go's, Discourse's). Host names arrive
lowercased from some clients, so keys are matched in any case
(`SiteStore.authenticate_akismet`). WordPress's plugin sends both `key` (the key being
verified) and `api_key` (the key saved before), so the account calls prefer `key` and the
comment calls `api_key`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import marshmallow as ma

from moderation.core import credentials
from moderation.core.records import Submission
from moderation.core.settings import PolicySettings
from moderation.http.errors import flatten_fields
from moderation.http.schemas import CommentSubmissionSchema

THANKS = "Thanks for making the web a better place."
DEBUG_HEADER = "X-akismet-debug-help"
PRO_TIP_HEADER = "X-akismet-pro-tip"

#: Akismet's parameter for each field of a submission's author and context.
AUTHOR_FIELDS = {
    "comment_author": "name",
    "comment_author_email": "email",
    "comment_author_url": "url",
    "user_ip": "ip",
    "user_agent": "user_agent",
}
CONTEXT_FIELDS = {"permalink": "permalink"}
#: A submission's field names (as validation errors name them) back to Akismet's.
AKISMET_NAMES = {
    "content": "comment_content",
    "honeypot": "honeypot_field_name",
    **{f"author.{ours}": theirs for theirs, ours in AUTHOR_FIELDS.items()},
    **{f"context.{ours}": theirs for theirs, ours in CONTEXT_FIELDS.items()},
}
#: Parameters with a meaning of their own: never the honeypot's value.
#: Where each kind of call looks for the key first.
COMMENT_KEY_FIELDS = ("api_key", "key")
ACCOUNT_KEY_FIELDS = ("key", "api_key")
#: What `/1.1/test` answers: WordPress's connectivity check looks for exactly this.
CONNECTED = "connected"
PARAMETERS = frozenset(
    {"api_key", "key", "blog", "blog_lang", "comment_content", "comment_type", "is_test"}
    | {"user_role"}
    | AUTHOR_FIELDS.keys()
    | CONTEXT_FIELDS.keys()
)


class AkismetError(Exception):
    """An answer in Akismet's error style: a short text body and the debug-help header."""

    def __init__(
        self, body: str, debug: str, status: int = 200, headers: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(body)
        self.body = body
        self.debug = debug
        self.status = status
        self.headers = dict(headers or {})


@dataclass(frozen=True)
class Verdict:
    spam: bool
    discard: bool = False
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def body(self) -> str:
        return "true" if self.spam else "false"


def host_key(host: str) -> str | None:
    """The leftmost label of `host` ("k3y.rest.akismet.com:443") when it has a key's form: an
    Akismet-shaped key in any case, or an API key."""
    name = host.rsplit(":", 1)[0] if host.count(":") == 1 else host  # no port; IPv6 stays whole
    label, dot, rest = name.partition(".")
    if not dot or not rest:
        return None
    if credentials.is_akismet_key(label) or label.lower().startswith(credentials.API_KEY_PREFIX):
        return label
    return None


def presented_key(
    form: Mapping[str, str], host: str, fields: tuple[str, ...] = COMMENT_KEY_FIELDS
) -> str | None:
    """The key a call presents: the first non-empty of the form's `fields`, else the host's."""
    for name in fields:
        value = form.get(name, "").strip()
        if value:
            return value
    return host_key(host)


def is_set(value: str | None) -> bool:
    """Akismet's flags (`is_test=1`): anything but empty, 0 or false."""
    return (value or "").strip().lower() not in ("", "0", "false", "no", "off")


def is_administrator(form: Mapping[str, str]) -> bool:
    return form.get("user_role", "").strip().lower() == "administrator"


def require(form: Mapping[str, str], *names: str) -> None:
    """Akismet's `Missing required field: user_ip.` for the first name that is empty."""
    for name in names:
        if not form.get(name, "").strip():
            raise AkismetError(f"Missing required field: {name}.", f'Empty "{name}" value')


def honeypot_value(form: Mapping[str, str]) -> str:
    """The value of the field `honeypot_field_name` names (empty when it names none)."""
    name = form.get("honeypot_field_name", "")
    return form.get(name, "") if name and name not in PARAMETERS else ""


def submission_from(form: Mapping[str, str]) -> Submission:
    """The form as a submission, validated like `POST /v1/comments` (AkismetError if not)."""
    author = {ours: form[theirs] for theirs, ours in AUTHOR_FIELDS.items() if form.get(theirs)}
    context = {ours: form[theirs] for theirs, ours in CONTEXT_FIELDS.items() if form.get(theirs)}
    # `blog_lang` lists the site's languages ("en, fr_ca"): the first is a hint for detection.
    site_language = form.get("blog_lang", "").split(",")[0].strip()
    if site_language:
        context["language"] = site_language[:35]
    body = {
        "id": "akismet",  # check_now gives every check an id of its own
        "content": form.get("comment_content", ""),
        "author": author,
        "context": context,
        "honeypot": honeypot_value(form),
    }
    try:
        loaded = CommentSubmissionSchema().load(body)
    except ma.ValidationError as error:
        problems = flatten_fields(error.messages)
        names = sorted(AKISMET_NAMES.get(name, name) for name in problems)
        details = "; ".join(
            f"{AKISMET_NAMES.get(name, name)}: {' '.join(messages)}"
            for name, messages in sorted(problems.items())
        )
        raise AkismetError(f"Invalid field: {', '.join(names)}.", details) from None
    return Submission(
        id=loaded["id"],
        content=loaded["content"],
        author=loaded.get("author", {}),
        context=loaded.get("context", {}),
        honeypot=loaded.get("honeypot", ""),
    )


def verdict(scores: Mapping[str, float], policy: PolicySettings, honeypot_filled: bool) -> Verdict:
    """Spam when the spam score reaches the site's hold threshold or the honeypot is filled;
    blatant ("discard") past the reject threshold, or with the honeypot filled."""
    score = scores.get("spam", 0.0)
    hold, reject = policy.hold.get("spam"), policy.reject.get("spam")
    discard = honeypot_filled or (reject is not None and score >= reject)
    spam = discard or (hold is not None and score >= hold)
    return Verdict(spam, discard, {PRO_TIP_HEADER: "discard"} if discard else {})


# --- the account calls -----------------------------------------------------------------------


@dataclass(frozen=True)
class Counts:
    """A month's Akismet calls for a site (or one of its blogs): checks answered spam and not
    spam, and the corrections sent afterwards (submit-spam: missed; submit-ham: false alarms)."""

    spam: int = 0
    ham: int = 0
    missed_spam: int = 0
    false_positives: int = 0

    @property
    def api_calls(self) -> int:
        return self.spam + self.ham

    def __add__(self, other: Counts) -> Counts:
        return Counts(
            self.spam + other.spam,
            self.ham + other.ham,
            self.missed_spam + other.missed_spam,
            self.false_positives + other.false_positives,
        )


COUNT_FIELDS = ("spam", "ham", "missed_spam", "false_positives")
KEY_SITES_ORDERS = ("total", *COUNT_FIELDS)
MAX_KEY_SITES_LIMIT = 500


def subscription(site: str) -> dict[str, object]:
    """get-subscription: a self-hosted key is always active, with no bill and no limit."""
    return {
        "account_id": 0,
        "account_name": site,
        "account_type": "self-hosted",
        "status": "active",
        "next_billing_date": None,
        "limit_reached": False,
        "user_login": site,
        "user_email": "",
    }


def accuracy(counts: Counts) -> float:
    """Akismet's accuracy: the share of checks not corrected afterwards, in percent."""
    if counts.api_calls == 0:
        return 100.0
    wrong = min(counts.api_calls, counts.missed_spam + counts.false_positives)
    return round(100.0 * (counts.api_calls - wrong) / counts.api_calls, 3)


def stats(months: Mapping[str, Counts]) -> dict[str, object]:
    """get-stats: totals over `months` ("YYYY-MM" -> counts) and the breakdown by month."""
    total = sum(months.values(), Counts())
    return {
        "spam": total.spam,
        "ham": total.ham,
        "missed_spam": total.missed_spam,
        "false_positives": total.false_positives,
        "accuracy": accuracy(total),
        "breakdown": {
            month: {**{name: getattr(counts, name) for name in COUNT_FIELDS}, "da": month}
            for month, counts in sorted(months.items())
        },
    }


def stats_months(available: list[str], since: str, this_month: str) -> list[str]:
    """The months get-stats' `from` asks for: "6-months", "all", or a date ("2026-07-01")."""
    if since == "all":
        return available
    if since in ("", "6-months"):
        year, month = (int(part) for part in this_month.split("-"))
        index = year * 12 + month - 1 - 5
        since = f"{index // 12:04d}-{index % 12 + 1:02d}"
    return [month for month in available if month >= since[:7]]


@dataclass(frozen=True)
class KeySitesQuery:
    month: str
    filter: str = ""
    order: str = "total"
    limit: int = 10
    offset: int = 0
    format: str = "json"


def key_sites_query(form: Mapping[str, str], this_month: str) -> KeySitesQuery:
    """key-sites' parameters, checked (AkismetError naming the one that is wrong)."""
    month = form.get("month", "").strip() or this_month
    if not (len(month) == 7 and month[4] == "-" and month.replace("-", "").isdigit()):
        raise AkismetError("Invalid field: month.", "month: use YYYY-MM")
    order = form.get("order", "").strip() or "total"
    if order not in KEY_SITES_ORDERS:
        raise AkismetError("Invalid field: order.", f"order: one of {', '.join(KEY_SITES_ORDERS)}")
    answer_format = form.get("format", "").strip() or "json"
    if answer_format not in ("json", "csv"):
        raise AkismetError("Invalid field: format.", "format: json or csv")
    return KeySitesQuery(
        month,
        form.get("filter", "").strip(),
        order,
        limit=whole_number(form, "limit", 10, MAX_KEY_SITES_LIMIT),
        offset=whole_number(form, "offset", 0, 10**9),
        format=answer_format,
    )


def whole_number(form: Mapping[str, str], name: str, default: int, maximum: int) -> int:
    raw = form.get(name, "").strip() or str(default)
    if not raw.isdigit() or int(raw) > maximum:
        raise AkismetError(f"Invalid field: {name}.", f"{name}: a whole number up to {maximum}")
    return int(raw)


@dataclass(frozen=True)
class KeySitesPage:
    """The blogs of one key-sites answer, busiest first, and how many matched in all."""

    query: KeySitesQuery
    blogs: list[tuple[str, Counts]]
    total: int


def key_sites_page(query: KeySitesQuery, blogs: Mapping[str, Counts]) -> KeySitesPage:
    """The blogs that used the key in the month and match the filter, in the asked order."""
    matching = sorted(
        ((blog, counts) for blog, counts in blogs.items() if query.filter in blog),
        key=lambda row: (-sort_value(row[1], query.order), row[0]),
    )
    return KeySitesPage(query, matching[query.offset : query.offset + query.limit], len(matching))


def key_sites_json(page: KeySitesPage) -> dict[str, object]:
    """key-sites as Akismet's JSON: the counts as strings, under the month."""
    return {
        page.query.month: [
            {
                "site": blog,
                "api_calls": str(counts.api_calls),
                **{name: str(getattr(counts, name)) for name in COUNT_FIELDS},
                "is_revoked": False,
            }
            for blog, counts in page.blogs
        ],
        "limit": page.query.limit,
        "offset": page.query.offset,
        "total": page.total,
    }


def key_sites_csv(page: KeySitesPage) -> str:
    """key-sites as Akismet's CSV: a title line, a header, a row per blog."""
    query = page.query
    lines = [
        f"Active sites for this key during {query.month} "
        f"(limit:{query.limit}, offset: {query.offset}, total: {page.total})",
        "Site,Total API Calls,Spam,Ham,Missed Spam,False Positives,Is Revoked",
    ]
    for blog, counts in page.blogs:
        site = '"' + blog.replace('"', '""') + '"'
        values = [str(counts.api_calls), *(str(getattr(counts, n)) for n in COUNT_FIELDS)]
        lines.append(",".join([site, *values, "false"]))
    return "\n".join(lines) + "\n"


def sort_value(counts: Counts, order: str) -> int:
    return counts.api_calls if order == "total" else int(getattr(counts, order))


def usage(calls: int) -> dict[str, object]:
    """usage-limit: this month's calls; a self-hosted key has no monthly limit (-1)."""
    return {"limit": -1, "usage": calls, "percentage": "0.00", "throttled": False}
