"""Spam signals: named, explainable evidence found in a comment and in what the service knows
about it (honeypot, repeats, bursts, author fields).

Pure functions only (no I/O, no Redis). Text signals are features of the learned spam model
(`workers.scoring.spam`), which fits their weights on labeled data together with the words of
the text. Context signals have no labeled data to fit them (no public data set has honeypot,
duplicate or burst counters), so their log-odds weights are set by hand here and added to the
learned score.
"""

from __future__ import annotations

import hashlib
import html
import re
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass


@dataclass(frozen=True)
class SpamContext:
    """What the service knows about a submission beyond its text (counters come from Redis)."""

    honeypot_filled: bool = False
    author_name: str | None = None
    author_email: str | None = None
    author_url: str | None = None
    duplicate_count: int = 1  # same or nearly the same text on this site in the window, incl. this
    author_burst: int = 1  # comments by this author id within the burst window, incl. this
    ip_burst: int = 1  # comments from this IP within the burst window, incl. this


@dataclass(frozen=True)
class SpamSignal:
    """One piece of evidence: a stable machine name, its log-odds weight and an explanation."""

    name: str
    weight: float
    detail: str


# --- hand-set weights of the context signals (log-odds) ---------------------------------------

#: The context weights are set against a plain comment at this log-odds (a score of 0.076);
#: the learned model may be far surer that a text is harmless, but that must not cancel a
#: filled honeypot or the fifth copy of a text (`workers.scoring.spam`).
PLAIN_COMMENT_LOGIT = -2.5

HONEYPOT_WEIGHT = 6.0  # alone, on a plain comment: 0.97, held
AUTHOR_URL_PRAISE_WEIGHT = 3.5  # short generic praise + author URL: held
AUTHOR_NAME_WEIGHT = 2.0

# --- patterns ---------------------------------------------------------------------------------

_ZERO_WIDTH = re.compile("[\u200b\u200c\u200d\u2060\u00ad\ufeff]")
_HREF = re.compile(r"""<a\s[^>]*?\bhref\s*=\s*["']?([^"'\s>]+)[^>]*>""", re.IGNORECASE)
_HTML_TAG = re.compile(r"</?[a-z][a-z0-9]*(?:\s[^<>]*)?/?>", re.IGNORECASE)

# Common TLDs for bare domains. Short ones that are also English words (in, it, is, to, us,
# at, no, so, do, go, am, as) are left out to avoid counting "log.in" or "do.it".
_TLDS = (
    "com|net|org|info|biz|edu|gov|io|co|ly|gl|gd|be|me|tv|cc|ws|fm|am|ru|de|uk|pl|fr|es|nl|"
    "br|ca|au|jp|cn|kr|ch|se|cz|eu|su|ua|xyz|top|site|online|club|shop|store|app|live|link|"
    "click|win|bid|loan|vip|icu|pw|tk|ml|ga|cf|gq|buzz|blog|news|pro|mobi|asia|tokyo"
)
_LINK = re.compile(
    r"(?:https?://|ftp://)[^\s<>\"']+"
    r"|\bwww\.[^\s<>\"']+"
    r"|(?<![\w@.-])(?:[a-z0-9](?:[a-z0-9-]*[a-z0-9])?\.)+(?:" + _TLDS + r")"
    r"(?![\w-])(?:[/?#][^\s<>\"']*)?",
    re.IGNORECASE,
)
_SHORTENER = re.compile(
    r"(?<![\w.-])(?:bit\.ly|goo\.gl|tinyurl\.com|t\.co|ow\.ly|is\.gd|buff\.ly|adf\.ly|bit\.do|"
    r"cutt\.ly|rebrand\.ly|shorturl\.at|tiny\.cc|rb\.gy|v\.gd|s\.id|lnkd\.in|soo\.gd|"
    r"clck\.ru|shorte\.st|ouo\.io|linktr\.ee)(?:/|\b)",
    re.IGNORECASE,
)
_OBFUSCATED_LINK = re.compile(
    r"\b[a-z0-9-]{2,}\s*(?:\s\.|\.\s|[(\[{]\s*dot\s*[)\]}])\s*(?:com|net|org|info|biz|ru)\b"
    r"|\bwatch\?v=[\w-]{6,}"
    r"|\b(?:youtube|facebook|instagram|twitter|twitch|soundcloud|tiktok|fb|ig)\s*/\s*\w{3,}",
    re.IGNORECASE,
)
_EMAIL = re.compile(r"[\w.+-]+@[a-z0-9-]+(?:\.[a-z0-9-]+)*\.[a-z]{2,}", re.IGNORECASE)
_PHONE = re.compile(
    r"(?<![\w+])(?:"
    r"\+\d{1,3}[\s.-]?(?:\(\d{1,4}\)[\s.-]?)?\d{2,4}(?:[\s.-]?\d{2,4}){1,4}"  # +44 7911 123456
    r"|\(?\d{3}\)?[\s.-]\d{3}[\s.-]\d{4}"  # (555) 123-4567, 555.123.4567
    r"|0\d{9,10}"  # 08452810075
    r")(?!\w)"
)
_SHOUT_LETTERS = 15
_EXCESS_PUNCT = re.compile(r"!{3,}|\${2,}|\?{4,}|(?:[!?]\s*){5,}")
_WORD = re.compile(r"\S+")
_REPEAT = re.compile(r"(\w)\1{2,}")  # "plzzz" -> "plz" for phrase matching
_REPEAT_ANY = re.compile(r"(\w)\1+")  # fingerprint: "channnel" == "channel" == "chanel"

# Phrase groups: (signal name, ((label, pattern), ...)). Labels, not the matched text, go into
# the detail, so details never echo what the commenter wrote.
_PLEASE = r"(?:please|pls|plz|plse|pleas|kindly)"
_PHRASES: tuple[tuple[str, tuple[tuple[str, str], ...]], ...] = (
    (
        "self_promotion",
        (
            (
                "check out my channel",
                r"\b(?:check(?:ing|ed)?|watch|listen\s+to|look\s+at|view)\s+(?:out\s+)?"
                r"(?:some\s+of\s+)?(?:my|our)\b|\bcheck\s+out\s+.{0,40}\bchannel\b",
            ),
            ("check me out", r"\bcheck\s+(?:me|us)\s+out\b"),
            (
                "subscribe",
                r"\b(?:sub|subs|subscribe|subscribes)\s+(?:to\s+)?(?:me|my|our|us|him|her)\b"
                r"|\b(?:please|pls|plz|pleas|and|guys|everyone|pl[sz]e)\s+subscribe\b"
                r"|^\W*subscribe\b",
            ),
            ("sub for sub", r"\bsub\s*(?:4|for)\s*sub|\bsub\s+back\b|\bsubscribe\s+back\b"),
            (
                "follow me",
                r"\bfollow\s+(?:me|us)\b|\bfollow\s*(?:4|for)\s*follow\b"
                r"|\bfollow\s+(?:my|our)\s+(?:channel|page|blog|instagram|insta|twitter|ig)\b",
            ),
            ("like for like", r"\blike\s*(?:4|for)\s*like\b|\bl4l\b|\bf4f\b"),
            ("add me", r"\badd\s+me\b"),
            (
                "small creator",
                r"\b(?:small|new|upcoming|up\s+and\s+coming|aspiring)\s+"
                r"(?:youtuber|channel|artist|rapper|singer|producer|creator)\b",
            ),
            (
                "sorry for the spam",
                r"\bsorry\s+(?:for|about)\s+(?:the\s+|this\s+|my\s+)?spam"
                r"|\b(?:this\s+is\s+not|not\s+a)\s+spam\b"
                r"|\bi\s+know\s+(?:you|people|most)\b.{0,40}\b(?:skip|ignore|scroll)"
                r"|\bplease\s+(?:don'?t|do\s+not)\s+(?:ignore|skip|scroll)",
            ),
            (
                "link in bio",
                r"\blinks?\s+(?:is\s+)?(?:in|on)\s+(?:my\s+)?(?:bio|profile|description)\b"
                r"|\blinks?\s+below\b",
            ),
            (
                "help me get subscribers",
                r"\b(?:get|reach|hit|gain)\s+\d+k?\s+(?:subs|subscribers|followers)\b",
            ),
        ),
    ),
    (
        "own_content",
        (
            (
                "my channel/video",
                r"\b(?:my|our)\s+(?:new\s+|youtube\s+|yt\s+)?(?:channel|vids?|videos|blog|"
                r"website|site|page|mixtape|band|covers?|profile|playlist|podcast|stream|"
                r"tracks?|music|rap|remix(?:es)?|beats)\b",
            ),
        ),
    ),
    (
        "call_to_action",
        (
            ("click here", r"\bclick\s+(?:here|this|on|the\s+link|below|my)\b"),
            ("visit my", r"\bvisit\s+(?:my|our|this|the)\b|\bgo\s+to\s+(?:my|our)\b"),
            (
                "please like/share/vote",
                r"\b" + _PLEASE + r"\s+(?:\w+\s+)?(?:like|share|sub|subscribe|check|watch|"
                r"visit|follow|vote|help|donate|click|view|support|comment|listen)\b",
            ),
            ("share this", r"\bshare\s+(?:this|it|my|our)\b"),
            ("check this out", r"\bcheck\s+(?:this|it)\s+out\b"),
            (
                "check out this video",
                r"\b(?:check\s+out|take\s+a\s+look\s+at|look\s+at)\s+(?:this|that)\s+"
                r"(?:video|playlist|channel|song|page|site|link|vid)\b",
            ),
            (
                "like this comment",
                r"\blike\s+this\s+comment\b|\blike\s+if\s+(?:you|u|ur|you'?re)\b",
            ),
            ("subscribe", r"\bsubscribe\b"),
            (
                "look it up",
                r"\bsearch\s+(?:for\s+)?[\"']|\blook\s+(?:me|us|her|him|it|them)\s+up\b"
                r"|\bhit\s+me\s+up\b",
            ),
            (
                "give it a like",
                r"\bgive\s+(?:it|me|us|this|my\s+\w+)\s+a\s+(?:like|chance|listen|try|look)\b",
            ),
            ("vote for", r"\bvote\s+for\b"),
            ("thumbs up", r"\bthumbs?\s+up\b"),
            ("donate", r"\bdonat(?:e|ions?)\b|\bgofundme\b|\bindiegogo\b|\bkickstarter\b"),
            (
                "act now",
                r"\b(?:act|order|buy|call|apply|register|download|join)\s+(?:now|today)\b"
                r"|\blimited\s+(?:time|offer)\b|\bsign\s+up\b",
            ),
        ),
    ),
    (
        "money_offer",
        (
            ("free money", r"\bfree\s+(?:money|cash|gift|iphone|ipad|followers|subscribers)\b"),
            (
                "earn money",
                r"\b(?:earn|make|making|earning)\s+(?:\$|money|cash|\d+\s*(?:\$|dollars|usd))"
                r"|\bget\s+paid\b|\bpaid\s+to\b",
            ),
            ("from home", r"\b(?:from|at)\s+home\b.{0,40}\b(?:earn|income|job|work|money)\b"),
            ("work from home", r"\bwork(?:ing)?\s+(?:from|at)\s+home\b"),
            ("money amount", r"[$€£]\s?\d|\b\d+\s?(?:dollars|usd|bucks)\b"),
            ("prize", r"\b(?:you\s+(?:have\s+|ve\s+)?won|cash\s+prize|claim\s+your|winner)\b"),
            ("gift card", r"\bgift\s*cards?\b"),
            (
                "free stuff",
                r"\bfree\s+(?:psn|xbox|steam|itunes|amazon|robux|v-?bucks|codes?|likes|views)\b"
                r"|\bgiveaway\b|\b(?:code|coins?|gems?|money|robux)\s+generator\b",
            ),
            (
                "money per day",
                r"(?:[$€£]\s?\d[\d,.]*|\b\d[\d,.]*\s?(?:\$|dollars|usd|euros?))\s*"
                r"(?:per|a|an|/|every)\s*(?:hour|day|week|month)\b",
            ),
            (
                "online job",
                r"\bmoney\s+online\b|\bonline\s+(?:jobs?|income|business)\b|\bjob\s+offer\b",
            ),
        ),
    ),
    (
        "pharma",
        (
            ("viagra/cialis", r"\b(?:v[i1!|]agra|c[i1!|]al[i1!|]s|levitra|kamagra)\b"),
            (
                "online pharmacy",
                r"\b(?:online|canadian|cheap)\s+(?:pharmac(?:y|ies)|meds|pills)\b"
                r"|\b(?:no|without\s+a?)\s*prescription\b|\bdiet\s+pills?\b",
            ),
            ("pills", r"\b(?:xanax|tramadol|valium|oxycodone|phentermine)\b"),
            ("weight loss", r"\bweight\s*loss\b|\blose\s+weight\b"),
        ),
    ),
    (
        "crypto_finance",
        (
            ("crypto", r"\b(?:bitcoins?|btc|crypto\w*|ethereum|eth|usdt|nft)\b"),
            ("forex", r"\b(?:forex|binary\s+options?|trading\s+signals?)\b"),
            ("investment", r"\binvest(?:ment|ments|ing|or)?\b|\bpassive\s+income\b"),
        ),
    ),
    (
        "gambling",
        (
            ("casino", r"\bcasinos?\b|\broulette\b|\bblackjack\b|\bjackpot\b"),
            ("betting", r"\bpoker\b|\bbetting\b|\bsports?\s*bet\w*|\bslots?\s+(?:game|machine)"),
        ),
    ),
    (
        "loans",
        (
            ("loans", r"\bloans?\b|\bpayday\b|\bmortgage\b"),
            ("credit", r"\bbad\s+credit\b|\bcredit\s+score\b|\bdebt\s+(?:relief|consolidation)"),
        ),
    ),
    (
        "adult",
        (
            ("adult", r"\b(?:porn\w*|nudes|webcam\s+girls?|sex\s+(?:chat|cam|videos?))\b"),
            ("dating", r"\b(?:hot|lonely|local)\s+(?:girls|singles|women)\b|\bdating\s+site\b"),
        ),
    ),
)
_COMPILED_PHRASES: tuple[tuple[str, tuple[tuple[str, re.Pattern[str]], ...]], ...] = tuple(
    (name, tuple((label, re.compile(rx, re.IGNORECASE)) for label, rx in group))
    for name, group in _PHRASES
)

#: Every text signal's name, in a fixed order: the learned spam model's signal features.
TEXT_SIGNALS: tuple[str, ...] = (
    "links",
    "link_density",
    "link_shortener",
    "obfuscated_link",
    *(name for name, _ in _PHRASES),
    "phone_number",
    "email_in_text",
    "shouting",
    "excessive_punctuation",
)

_PRAISE = re.compile(
    r"\b(?:great|nice|good|awesome|excellent|amazing|wonderful|interesting|informative|useful|"
    r"helpful|fantastic|cool)\s+(?:post|article|blog|site|website|read|write-?up|info|"
    r"information|content|work|job|stuff|share|points?)\b"
    r"|\bthanks?(?:\s+you)?\s+for\s+(?:sharing|the\s+(?:post|article|info|information))\b"
    r"|\bvery\s+(?:informative|helpful|useful|nice|interesting)\b"
    r"|\bkeep\s+up\s+the\s+(?:good|great)\s+work\b"
    r"|\bi\s+(?:really\s+)?(?:like|love|enjoyed)\s+(?:your|this)\s+(?:post|article|blog|site)\b"
    r"|\bbookmarked\b",
    re.IGNORECASE,
)
_PRAISE_MAX_WORDS = 25
_AUTHOR_NAME_SPAM = tuple(
    (label, pattern)
    for name, group in _COMPILED_PHRASES
    if name != "self_promotion"
    for label, pattern in group
)


# --- public functions ---------------------------------------------------------------------------


def clean_text(text: str) -> str:
    """Unescape HTML entities, keep ``<a href>`` targets, turn other tags into spaces and drop
    zero-width characters and BOMs."""
    text = html.unescape(text)
    text = _HREF.sub(r" \1 ", text)
    text = _HTML_TAG.sub(" ", text)
    return _ZERO_WIDTH.sub("", text)


def count_links(text: str) -> int:
    """Count http(s)/www URLs, ``<a href>`` targets and bare domains like ``example.com/path``."""
    return links_in_cleaned(clean_text(text))


def links_in_cleaned(cleaned: str) -> int:
    """`count_links` of a text already through `clean_text`."""
    return len(_LINK.findall(cleaned))


def text_fingerprint(text: str) -> str:
    """A hex digest equal for the same or nearly the same text.

    Ignores case, accents, whitespace, punctuation, digits, HTML entities, zero-width characters
    and repeated letters. Text with no letters at all falls back to its whitespace-normalised
    form, so emoji-only comments are still compared exactly.
    """
    cleaned = unicodedata.normalize("NFKD", clean_text(text).casefold())
    letters = "".join(
        ch if ch.isalpha() else " " for ch in cleaned if not unicodedata.combining(ch)
    )
    letters = _REPEAT_ANY.sub(r"\1", letters)
    key = " ".join(letters.split())
    if not key:
        key = "raw:" + " ".join(cleaned.split())
    return hashlib.blake2b(("v1:" + key).encode("utf-8"), digest_size=16).hexdigest()


def text_signals(text: str) -> dict[str, tuple[float, str]]:
    """Text-only signals as ``{name: (strength, detail)}``; strength multiplies the weight.

    Names are those of `TEXT_SIGNALS`; the learned spam model weighs them.
    """
    return signals_in_cleaned(clean_text(text))


# --- helpers ----------------------------------------------------------------------------------


def signals_in_cleaned(cleaned: str) -> dict[str, tuple[float, str]]:
    """`text_signals` of a text already through `clean_text`."""
    phrase_text = _REPEAT.sub(r"\1", cleaned)
    found: dict[str, tuple[float, str]] = {}

    links = _LINK.findall(cleaned)
    words = max(1, len(_WORD.findall(cleaned)))
    if links:
        n = len(links)
        found["links"] = (1.0 + 0.5 * (min(n, 3) - 1), f"{n} link" + ("s" if n > 1 else ""))
        density = n / words
        if density >= 0.2:
            found["link_density"] = (min(density, 1.0), f"{n} link(s) in {words} words")
    shorteners = sorted({m.lower().rstrip("/") for m in _SHORTENER.findall(cleaned)})
    if shorteners:
        found["link_shortener"] = (1.0, "link shortener: " + ", ".join(shorteners))

    if not links and _OBFUSCATED_LINK.search(cleaned):
        found["obfuscated_link"] = (1.0, "disguised link (spaced dots, 'watch?v=', 'site/name')")

    for name, group in _COMPILED_PHRASES:
        labels = [label for label, pattern in group if pattern.search(phrase_text)]
        if labels:
            strength = 1.0 + 0.5 * (min(len(labels), 3) - 1)
            found[name] = (strength, "phrases: " + ", ".join(labels))

    if _PHONE.search(cleaned):
        found["phone_number"] = (1.0, "phone number in text")
    if _EMAIL.search(cleaned):
        found["email_in_text"] = (1.0, "email address in text")

    letters = [ch for ch in cleaned if ch.isalpha()]
    upper = sum(ch.isupper() for ch in letters)
    if len(letters) >= _SHOUT_LETTERS and upper / len(letters) >= 0.8:
        found["shouting"] = (1.0, f"{round(100 * upper / len(letters))}% capital letters")
    runs = _EXCESS_PUNCT.findall(cleaned)
    if runs:
        found["excessive_punctuation"] = (1.0, f"{len(runs)} run(s) of !!!, ??? or $$$")
    return found


def _burst_weight(count: int) -> float:
    """Log-odds for N posts in the burst window: nothing below 3, strong from 5, capped."""
    if count < 3:
        return 0.0
    if count < 5:
        return 1.0
    return min(3.5 + 0.25 * (count - 5), 5.0)


def context_signals(cleaned: str, context: SpamContext) -> Iterator[SpamSignal]:
    """Signals from what the service knows beyond the text (counters, form fields)."""
    if context.honeypot_filled:
        yield SpamSignal("honeypot", HONEYPOT_WEIGHT, "honeypot field filled")
    dup = context.duplicate_count
    if dup >= 2:
        weight = 1.0 if dup == 2 else min(3.5 + 0.5 * (dup - 3), 5.5)
        yield SpamSignal("duplicate", weight, f"same or nearly the same text posted {dup} times")
    if (weight := _burst_weight(context.author_burst)) > 0:
        detail = f"{context.author_burst} comments by this author in the burst window"
        yield SpamSignal("author_burst", weight, detail)
    if (weight := 0.8 * _burst_weight(context.ip_burst)) > 0:
        detail = f"{context.ip_burst} comments from this IP in the burst window"
        yield SpamSignal("ip_burst", round(weight, 3), detail)
    if (
        context.author_url
        and len(_WORD.findall(cleaned)) <= _PRAISE_MAX_WORDS
        and _PRAISE.search(cleaned)
    ):
        yield SpamSignal(
            "author_url_praise", AUTHOR_URL_PRAISE_WEIGHT, "generic praise with an author URL"
        )
    name = context.author_name or ""
    if _LINK.search(name) or _EMAIL.search(name):
        yield SpamSignal("author_name_spam", AUTHOR_NAME_WEIGHT, "author name contains a link")
        return
    # Email local parts like "cheap.viagra.deals@" count too; the domain is not looked at.
    local_part = (context.author_email or "").partition("@")[0].replace(".", " ")
    who = f"{name} {local_part}".strip()
    labels = [label for label, pattern in _AUTHOR_NAME_SPAM if who and pattern.search(who)]
    if labels:
        detail = "author name or email has spam keywords: " + ", ".join(labels)
        yield SpamSignal("author_name_spam", AUTHOR_NAME_WEIGHT, detail)
