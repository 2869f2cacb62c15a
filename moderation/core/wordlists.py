# ruff: noqa: RUF001, RUF002 - look-alike letters are this module's subject
"""Banned / suspect word matching that resists common evasions, in every script.

Both the configured entries and the comment go through `normalise`, which folds case,
compatibility forms (full-width, ligatures, maths letters), invisible characters, disguising
look-alike letters, spaced-out letters ("i d i o t") and digit leetspeak, and shortens runs
of three or more equal characters to two. Each entry then becomes a regex over the
normalised text in which every letter also accepts its accented spellings, its symbol
spellings (a -> a or @, i -> i, ! or |, ...) and a stretched or single form of itself.

Word boundaries. An entry that starts or ends with a letter of a script written with spaces
(Latin, Cyrillic, Greek, Arabic, Hebrew, Indic, ...) is anchored there on a word boundary, so
"class" never matches "ass"; a letter's combining marks belong to its word ("कम" is not in
"कमीना"). Scripts written without spaces between words (Chinese, Japanese, Thai, Lao, Khmer,
Myanmar, Tibetan, Yi, Javanese, Balinese, the Tai scripts) have no boundary to anchor on: their
entries match anywhere ("傻逼" in "你是个傻逼吧"), only never splitting a letter from its
marks. Korean spaces its words but glues particles and endings to them, so a Hangul entry
must start a word and may end anywhere ("바보" in "너는 바보야", not "시발" in "출시발표").
A change of script is always a boundary: a Latin word beside a CJK, kana, Thai or Hangul
letter is a word of its own ("你是个idiot吧" holds "idiot"), while "我的classic" still does not
hold "ass", whose neighbour there is the Latin "l". (`normalise` puts a space at each such
change.)

Accents (Latin, Greek and Cyrillic letters). A letter written without marks in an entry
accepts that letter with any accents ("connard" matches "cönnard", "puta" matches "púta"); a
letter written with marks accepts exactly those marks ("salopé" matches "SALOPÉ", not
"salope" nor "salopè": list the bare "salope" to match every accented spelling, "göt" to
match the Turkish word and not English "got"). Letters that an alphabet counts as letters of
their own are never accents of their base letter, in either direction, because dropping
their mark spells another word: ñ (Spanish año/ano, coño/cono), å (Danish, Norwegian,
Swedish får/far), ø (Danish, Norwegian høre/hore) and ı (Turkish sık/sik) - Unicode does not
decompose the last two either - and the Cyrillic letters with a mark (й, ї, ў, ѓ, ќ, ...),
except ё, which Russian writes as е, and the stress marks ѐ ѝ. All other marks are accents:
the diaeresis too (German collates ä ö ü with a o u and writes them ae oe ue, and it is the
commonest disguise), at the price of the languages where it makes letters of their own
("hora" matches Swedish "höra", "schwul" matches German "schwül"); likewise ç ş ğ ą ę ł ś ż č
š ž ő and the Vietnamese tones, whose languages are also often typed without their marks:
sites write such entries with their marks. æ œ ß are spelt ae oe ss; the stroked letters
ł đ ħ ŧ ƀ ɨ ʉ ƶ ǥ (and ð) are accented forms of l d h t b i u z g (d). Marks no precomposed
letter has are decoration and dropped, as are Arabic and Hebrew vowel points and the Arabic
tatweel (optional in writing); the marks of other scripts are spelling: Indic vowel signs,
Thai vowels and tones, kana voicing (バカ is not ハカ).

Look-alikes. Cyrillic and Greek letters that look like Latin ones (а е о р с у х і ѕ ...,
α ι κ ν ο ρ υ χ ..., and capitals such as В Н М Т К) are read as Latin only where they
disguise a Latin word: in a word that mixes them with a letter only Latin has ("іdіоt"), in a
word made of look-alikes of both scripts unless its nearest words are Cyrillic (Greek), and in
a word made only of Cyrillic (Greek) look-alikes whose nearest words are Latin ("nice ѕех").
The other way round, a word that mixes Latin look-alikes into letters only Cyrillic (Greek)
has is read in that script ("сyкa" is "сука"). Genuine Russian or Greek text is left alone:
"сука" matches a Russian entry, never "cyka", and the "сео" of "наш сео уволен" never "ceo".

Leetspeak is split in two: digits are rewritten in the text, but only next to a letter of a
spaced script (so "1000" stays a number and never matches "loo", nor does "我有1000个"), while
the symbols @ $ ! | + stay in the text and the entry patterns accept them. "1" and "|" may be i
or l: the text keeps both as "|", and both the i and the l of an entry accept "|".
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from itertools import chain, groupby
from types import MappingProxyType
from typing import NamedTuple, TypeAlias

# --- scripts and marks --------------------------------------------------------------------

Ranges = tuple[tuple[int, int], ...]

# Scripts written without spaces between words, and Hangul (spaced, but see the docstring).
_UNSPACED: Ranges = (
    (0x0E00, 0x0FFF),  # Thai, Lao, Tibetan
    (0x1000, 0x109F),  # Myanmar
    (0x1100, 0x11FF),  # Hangul jamo
    (0x1780, 0x17FF),  # Khmer
    (0x1950, 0x1AAF),  # Tai Le, New Tai Lue, Khmer symbols, Buginese, Tai Tham
    (0x1B00, 0x1B7F),  # Balinese
    (0x2E80, 0x2FDF),  # CJK radicals
    (0x3000, 0x31FF),  # CJK symbols (々 〆), kana, bopomofo, Hangul jamo (ㅋ), CJK strokes
    (0x3400, 0x4DBF),  # CJK extension A
    (0x4E00, 0xA4CF),  # CJK, Yi
    (0xA960, 0xA97F),  # Hangul jamo extension A
    (0xA980, 0xA9FF),  # Javanese, Myanmar extension B
    (0xAA60, 0xAADF),  # Myanmar extension A, Tai Viet
    (0xAC00, 0xD7FF),  # Hangul syllables, jamo extension B
    (0xF900, 0xFAFF),  # CJK compatibility
    (0xFF66, 0xFFDC),  # half-width katakana and Hangul
    (0x16FE0, 0x18AFF),  # ideographic symbols, Tangut
    (0x1B000, 0x1B16F),  # kana supplement and extensions
    (0x20000, 0x323AF),  # CJK extensions B-H, compatibility supplement
)
_HANGUL_SYLLABLE = "\uac00-\ud7a3"
# Blocks whose marks are vowel points, optional in writing: Hebrew, Arabic, Syriac.
_POINTED: Ranges = ((0x0590, 0x074F), (0x0750, 0x077F), (0x0870, 0x08FF))
_TATWEEL = "\u0640"
_VARIATION_SELECTORS: Ranges = ((0xFE00, 0xFE0F), (0xE0100, 0xE01EF))
# Combining marks of the Latin, Greek and Cyrillic scripts: left over once the text is
# composed, they are decoration ("a\u0337", zalgo).
_DECORATION: Ranges = (
    (0x0300, 0x036F),
    (0x0483, 0x0489),
    (0x1AB0, 0x1AFF),
    (0x1DC0, 0x1DFF),
    (0x20D0, 0x20FF),
    (0xA670, 0xA67F),
    (0xFE20, 0xFE2F),
)


def _within(char: str, ranges: Ranges) -> bool:
    return any(low <= ord(char) <= high for low, high in ranges)


def _class_body(ranges: Iterable[tuple[int, int]]) -> str:
    """The inside of a regex character class holding these code point ranges."""
    return "".join(
        f"\\U{low:08x}" if low == high else f"\\U{low:08x}-\\U{high:08x}" for low, high in ranges
    )


def _marks() -> Ranges:
    """The combining marks of the Basic Multilingual Plane, as ranges."""
    ranges: list[tuple[int, int]] = []
    for code in range(0x10000):
        if _is_mark(chr(code)):
            if ranges and ranges[-1][1] == code - 1:
                ranges[-1] = (ranges[-1][0], code)
            else:
                ranges.append((code, code))
    return tuple(ranges)


def _is_mark(char: str) -> bool:
    return unicodedata.category(char).startswith("M")


# Such classes are compiled once each: `re` builds a big class slowly, and tests astral
# ranges one by one (the marks are those of the BMP only, for that).
_MARKS = _class_body(_marks())
_ANY_MARK = re.compile(f"[{_MARKS}]")
_UNSPACED_RUN = re.compile(f"[{_class_body(_UNSPACED)}]+")
_UNSPACED_CHAR = re.compile(f"[{_class_body(_UNSPACED)}]")
_HANGUL_SYLLABLE_CHAR = re.compile(f"[{_HANGUL_SYLLABLE}]")
# What is left over once the text is composed: decoration, and letters to spell out.
_LEFT_OVER = re.compile(f"[{_class_body(_DECORATION)}æœ]")
_SPELLED_OUT = {"æ": "ae", "œ": "oe"}  # ß and ĳ: casefolding and NFKC

# --- accents ------------------------------------------------------------------------------

# Blocks of the Latin, Greek and Cyrillic letters that may carry accents.
_ALPHABETS: Ranges = (
    (0x00C0, 0x024F),
    (0x0370, 0x052F),
    (0x1C80, 0x1C8F),
    (0x1E00, 0x1FFF),
    (0x2C60, 0x2C7F),
    (0xA640, 0xA69F),
    (0xA720, 0xA7FF),
    (0xAB30, 0xAB6F),
)
# Latin letters whose mark makes a letter of its own (ñ, å): see the module docstring.
_OWN_LETTER_MARKS = frozenset({("n", "\u0303"), ("a", "\u030a")})
# Cyrillic marks that are accents (ё, ѐ, ѝ); every other marked Cyrillic letter is its own.
_CYRILLIC_ACCENTS = frozenset({("е", "\u0308"), ("е", "\u0300"), ("и", "\u0300")})
# Letters with a stroke that Unicode does not decompose, and the letter they are a form of.
_STROKED = dict(zip("łđðħŧƀɨʉƶǥ", "lddhtbiuzg", strict=True))


def _is_accent(base: str, marks: str) -> bool:
    """Whether `marks` on `base` only accent it, rather than make a letter of their own."""
    if "CYRILLIC" in unicodedata.name(base, ""):
        return all((base, mark) in _CYRILLIC_ACCENTS for mark in marks)
    return not any((base, mark) in _OWN_LETTER_MARKS for mark in marks)


def _bases() -> Mapping[str, str]:
    """Each accented letter of a casefolded text -> its unaccented letter."""
    bases = dict(_STROKED)
    for code in chain.from_iterable(range(low, high + 1) for low, high in _ALPHABETS):
        char = chr(code)
        base, marks = (decomposed := unicodedata.normalize("NFD", char))[0], decomposed[1:]
        folded = unicodedata.normalize("NFKC", char.casefold()) == char
        if char.isalpha() and folded and marks and _is_accent(base, marks):
            bases[char] = base
    return MappingProxyType(bases)


def _forms(bases: Mapping[str, str]) -> Mapping[str, str]:
    """Each unaccented letter -> itself and its accented forms."""
    forms: dict[str, str] = {}
    for char, base in bases.items():
        forms[base] = forms.get(base, base) + char
    return MappingProxyType(forms)


_BASE = _bases()
_FORMS = _forms(_BASE)
_ACCENTED = re.compile(f"[{''.join(_BASE)}]")


def _strip_accents(normal: str) -> str:
    """`normal` with each accented letter replaced by its letter: one character for one."""
    return _ACCENTED.sub(lambda char: _BASE[char.group()], normal)


# --- look-alikes --------------------------------------------------------------------------

_TO_LATIN = str.maketrans(
    "аеорсухіјѕԁԛԝӏһАВЕКМНОРСТУХІЈЅԚԜ" + "αικνορυχϲΑΒΕΖΗΙΚΜΝΟΡΤΥΧϹ",
    "aeopcyxijsdqwlhABEKMHOPCTYXIJSQW" + "aikvopuxcABEZHIKMNOPTYXC",
)
_TO_CYRILLIC = str.maketrans("aceopxykmiABCEHKMOPTXYI", "асеорхукміАВСЕНКМОРТХУІ")
_TO_GREEK = str.maketrans("aikvopuxABEZHIKMNOPTYX", "αικνορυχΑΒΕΖΗΙΚΜΝΟΡΤΥΧ")
_TO_SCRIPT = {"latin": _TO_LATIN, "cyrillic": _TO_CYRILLIC, "greek": _TO_GREEK}
_LATIN_ALIKES = "".join(sorted({chr(code) for code in [*_TO_CYRILLIC, *_TO_GREEK]}))
_FOREIGN_ALIKES = "".join(chr(code) for code in _TO_LATIN)
_FOREIGN_KINDS = frozenset("cCgG")
_LATIN = "A-Za-z\u00c0-\u024f"
_ANY_LATIN = re.compile(f"[{_LATIN}]")
_FOREIGN = "\u0370-\u03ff\u0400-\u052f\u1c80-\u1c8f\u1f00-\u1fff\ua640-\ua69f"
_ANY_FOREIGN = re.compile(f"[{_FOREIGN}]")


# In look-alike words (decomposed), the marks are those of the Latin, Greek and Cyrillic
# letters; a mark of another script ends such a word.
_ACCENT_MARK = _class_body(_DECORATION)
_WORD_CHAR = rf"[\w{_ACCENT_MARK}]"


def _words_of(letters: str) -> str:
    """A regex for the words whose letters (and any digits and marks) are all in `letters`."""
    also = rf"[{letters}\d{_ACCENT_MARK}]"
    return rf"{also}*[{letters}]{also}*(?!{_WORD_CHAR})"


# Words that may be disguised: mixing Latin and Cyrillic or Greek, or all foreign look-alikes.
_MAYBE_DISGUISED = re.compile(
    rf"(?<!{_WORD_CHAR})(?:(?={_WORD_CHAR}*?[{_LATIN}])(?={_WORD_CHAR}*?[{_FOREIGN}])"
    rf"{_WORD_CHAR}+|{_words_of(_FOREIGN_ALIKES)})"
)
# Words whose letters tell their script: one that is not a look-alike, or all Latin ones.
_TELLING = re.compile(
    rf"(?<!{_WORD_CHAR})(?:(?={_WORD_CHAR}*?[^\W\d_{_LATIN_ALIKES}{_FOREIGN_ALIKES}])"
    rf"{_WORD_CHAR}+|{_words_of(_LATIN_ALIKES)})"
)


def _letter_kind(char: str) -> str:
    """L/l: Latin, C/c: Cyrillic, G/g: Greek (lower case: a look-alike), O: another script,
    m: anything else."""
    if not char.isalpha():
        return "m"
    script = unicodedata.name(char, "").partition(" ")[0]
    if script == "LATIN":
        return "l" if char in _LATIN_ALIKES else "L"
    if script in ("CYRILLIC", "GREEK"):
        return script[0].lower() if char in _FOREIGN_ALIKES else script[0]
    return "O"


def _reading(word: str, kind_of: Mapping[int, str]) -> tuple[str | None, set[str]]:
    """The script a word's letters say it is in ("alike": they cannot tell), and their kinds."""
    kinds = set(word.translate(kind_of))
    if not kinds & _FOREIGN_KINDS:
        return ("latin" if kinds & {"l", "L"} else "other" if "O" in kinds else None), kinds
    if "O" in kinds or ("L" in kinds and kinds & {"C", "G"}):
        return "other", kinds
    if "L" in kinds:
        return "latin", kinds
    if kinds & {"C", "G"}:
        return ("cyrillic" if "C" in kinds else "greek"), kinds
    return "alike", kinds


def _folding(reading: str | None, kinds: set[str], neighbours: set[str | None]) -> str | None:
    """The script a word's look-alikes are read in, if they are to change; `neighbours`: the
    readings of the nearest words that tell theirs (None: no such word)."""
    if reading == "latin" and kinds & _FOREIGN_KINDS:
        return "latin"
    if reading in ("cyrillic", "greek") and "l" in kinds:
        return reading
    if reading != "alike":
        return None
    context = neighbours - {None}
    if "l" in kinds:  # look-alikes of both scripts: a disguise, read as its context says
        return next(iter(context)) if context in ({"cyrillic"}, {"greek"}) else "latin"
    return "latin" if context == {"latin"} else None


def _telling_neighbour(text: str, position: int, kind_of: Mapping[int, str]) -> str | None:
    """The script of the first word from `position` on whose letters tell it."""
    word = _TELLING.search(text, position)
    return _reading(word.group(), kind_of)[0] if word else None


def _read_lookalikes(text: str) -> str:
    """Read look-alike letters in the script of the word or of its neighbours (docstring)."""
    if not (_ANY_LATIN.search(text) and _ANY_FOREIGN.search(text)):
        return text
    text = unicodedata.normalize("NFD", text)  # "cӧnnard": a look-alike with an accent
    kind_of = {ord(char): _letter_kind(char) for char in set(text)}
    pieces: list[str] = []
    done = 0
    backwards = ""
    for word in _MAYBE_DISGUISED.finditer(text):
        reading, kinds = _reading(word.group(), kind_of)
        neighbours: set[str | None] = set()
        if reading == "alike":
            backwards = backwards or text[::-1]
            neighbours = {
                _telling_neighbour(text, word.end(), kind_of),
                _telling_neighbour(backwards, len(text) - word.start(), kind_of),
            }
        script = _folding(reading, kinds, neighbours)
        if script is not None:
            pieces += [text[done : word.start()], word.group().translate(_TO_SCRIPT[script])]
            done = word.end()
    return "".join(pieces) + text[done:]


# --- normalising --------------------------------------------------------------------------


def _invisible(char: str) -> bool:
    """Format characters (zero-width, soft hyphen), variation selectors, vowel points."""
    if char == _TATWEEL or _within(char, _VARIATION_SELECTORS):
        return True
    category = unicodedata.category(char)
    return category == "Cf" or (category == "Mn" and _within(char, _POINTED))


def _fold_unicode(text: str) -> str:
    """Read look-alikes in context, casefold, compose keeping accents, drop the rest, and
    put a space where a script without spaces meets another."""
    # NFKC returns at once a text already in that form, as most are.
    text = _read_lookalikes(unicodedata.normalize("NFKC", text)).casefold()
    # Look at each distinct character once, not at every character of a long comment.
    invisible = {ord(char): None for char in set(text) if _invisible(char)}
    text = unicodedata.normalize("NFKC", text.translate(invisible) if invisible else text)
    text = _LEFT_OVER.sub(lambda char: _SPELLED_OUT.get(char.group(), ""), text)
    return _UNSPACED_RUN.sub(r" \g<0> ", text)


def _spacing(marks: str) -> tuple[re.Pattern[str], re.Pattern[str]]:
    """A word (letters, digits, `marks` and leetspeak symbols), and spaced-out letters."""
    char, other = rf"[\w@$!|+{marks}]", rf"[^\w@$!|+{marks}]"
    # Three or more lone characters with the same 1-3 spaces or punctuation between each two:
    # "i d i o t", "i.d.i.o.t", "I. D. I. O. T." (but not "I'm 5" or "7 a.m.").
    spaced_out = rf"(?<!{char}){char}(?P<gap>{other}{{1,3}}){char}(?:(?P=gap){char}(?!{char}))+"
    return re.compile(f"{char}+"), re.compile(spaced_out)


_ASCII_SPACING = _spacing("")
_UNICODE_SPACING = _spacing(_MARKS)
_DIGIT = re.compile(r"\d")
_NUMBER = re.compile(r"(?<!\w)(\d++)(?![^\W\d])")  # digits with no letter on either side
_LONG_RUN = re.compile(r"(\D)\1\1+")  # digits are left alone: "1000" is a number
_HAS_ALNUM = re.compile(r"\w")
# Digits read as letters next to a letter; "1" joins "|" as "i or l".
_LEET_DIGITS = str.maketrans("01345789", "o|eastbg")


def _read_leet(text: str) -> str:
    """Digits next to a letter are letters ("1d10t", "5hit"); others are a number ("1000")."""
    if not _DIGIT.search(text):
        return text
    parts = _NUMBER.split(text)  # text, number, text, number, ..., text
    parts[::2] = [part.translate(_LEET_DIGITS) for part in parts[::2]]
    return "".join(parts)


def _joined(spaced: re.Match[str], word: re.Pattern[str]) -> str:
    """Spaced-out letters joined ("i d i o t"), keeping a space between scripts."""
    joined = "".join(word.findall(spaced.group()))
    return joined if joined.isascii() else _UNSPACED_RUN.sub(r" \g<0> ", joined)


def normalise(text: str) -> str:
    """Fold `text` to the canonical spelling that entries are matched against."""
    word, spaced_out = _ASCII_SPACING if text.isascii() else _UNICODE_SPACING
    text = (text.lower() if text.isascii() else _fold_unicode(text)).replace("_", " ")
    text = spaced_out.sub(lambda spaced: _joined(spaced, word), text)
    return _LONG_RUN.sub(r"\1\1", _read_leet(text))


# --- matching -----------------------------------------------------------------------------

# In entries, symbols stand for their letter; in patterns, letters accept their symbols.
_ENTRY_SYMBOLS = str.maketrans("@$!+", "asit")
_ACCEPTS = {"a": "a@", "s": "s$", "i": "i!|", "l": "l|", "|": "il|!", "t": "t+"}
# Word boundaries for letters of spaced scripts (the text has a space where such a letter
# meets one of another script): no letter or digit on the outside, nor a letter hidden
# behind "@" or "$" ("cl@ss" is one word).
_STARTS = {
    "spaced": r"(?<!\w)(?<!\w[@$])",
    "continuous": "",
    "hangul": f"(?<![{_HANGUL_SYLLABLE}])",
}
_ENDS = {"spaced": r"(?!\w)(?![@$]\w)", "continuous": "", "hangul": ""}
# Between the words of a phrase: a few spaces or punctuation, or nothing ("buyfollowers").
_GAP_MAX = 8
_GAP = rf"\W{{0,{_GAP_MAX}}}"


def _edge(char: str) -> str:
    """How an entry is anchored on the side where it ends with `char`."""
    if _HANGUL_SYLLABLE_CHAR.match(char):
        return "hangul"
    return "continuous" if _UNSPACED_CHAR.match(char) else "spaced"


class _Compiled(NamedTuple):
    start: str  # the start anchor (a lookbehind), if any
    bare: list[str]  # the rest of the regex's pieces, over the text with accents stripped
    exact: str | None  # the same over the text itself, for an entry with accented letters
    first: str  # the characters of the stripped text the first letter accepts
    span: int  # the most characters of normalised text the regex can cover


def _letter(char: str, count: int, accepted: str) -> str:
    """The regex for `count` times `char`, spelt with any of the `accepted` characters."""
    pattern = f"[{re.escape(accepted)}]" if len(accepted) > 1 else re.escape(accepted)
    if char.isdigit():  # digits are never stretched or shortened
        return pattern * count
    # The text holds at most two in a row: "ass" needs two s, "idiot" one or two.
    return f"{pattern}{pattern}?" if count == 1 else pattern * 2


def _exact_spellings(char: str) -> str:
    """What an entry's letter accepts in the text itself: any accent if it has none."""
    if char == "|":
        return _FORMS.get("i", "i") + _FORMS.get("l", "l") + "|!"
    return _FORMS.get(char, char) + _ACCEPTS.get(char, char)[1:]


def _compile_entry(normal: str) -> _Compiled:
    words = [word.translate(_ENTRY_SYMBOLS) for word in _UNICODE_SPACING[0].findall(normal)]
    accented = bool(_ACCENTED.search(normal))
    bare: list[str] = []
    exact: list[str] = []
    span = 0
    for word in words:
        if span:
            bare.append(_GAP)
            exact.append(_GAP)
            span += _GAP_MAX
        for char, run in groupby(word):
            count = len(list(run))
            base = _BASE.get(char, char)
            bare.append(_letter(char, count, _ACCEPTS.get(base, base)))
            if accented:
                exact.append(_letter(char, count, _exact_spellings(char)))
            span += count if char.isdigit() else 2
    end = _ENDS[_edge(words[-1][-1])]
    first = _BASE.get(words[0][0], words[0][0])
    return _Compiled(
        start=_STARTS[_edge(first)],
        bare=[*bare, end] if end else bare,
        exact="".join(exact) + end if accented else None,
        first=_ACCEPTS.get(first, first),
        span=span,
    )


#: A prefix tree of atoms; the key None marks where an entry ends.
_Trie: TypeAlias = dict["str | None", "_Trie"]


def _trie_pattern(sequences: Iterable[list[str]]) -> str:
    """One regex for many atom sequences, sharing common prefixes so each position is cheap."""
    trie: _Trie = {}
    for atoms in sequences:
        node = trie
        for atom in atoms:
            node = node.setdefault(atom, {})
        node[None] = {}  # an entry ends here

    def emit(node: _Trie) -> str:
        branches = ["" if atom is None else atom + emit(child) for atom, child in node.items()]
        return branches[0] if len(branches) == 1 else "(?:" + "|".join(branches) + ")"

    return emit(trie)


def _scan(compiled: list[_Compiled]) -> re.Pattern[str]:
    """Where some entry starts: its start anchor holds and its bare regex follows."""
    by_start: dict[str, list[_Compiled]] = {}
    for entry in compiled:
        by_start.setdefault(entry.start, []).append(entry)
    scans = []
    for start, group in by_start.items():
        scan = f"{start}(?={_trie_pattern(entry.bare for entry in group)})"
        if len(by_start) > 1:  # each kind of start is tried only where one of its letters is
            firsts = "".join(dict.fromkeys("".join(entry.first for entry in group)))
            scan = f"(?=[{re.escape(firsts)}]){scan}"
        scans.append(scan)
    return re.compile("|".join(scans))


@dataclass(frozen=True)
class _Matcher:
    """Entries compiled together, found by one scan of a text."""

    indices: tuple[int, ...]  # the entries' places in the word list
    bare: tuple[re.Pattern[str], ...]
    exact: tuple[re.Pattern[str] | None, ...]
    by_first: Mapping[str, tuple[int, ...]]  # a character -> the entries starting with it
    scan: re.Pattern[str] | None  # where some entry starts
    window: int  # whether an entry matches at a position depends on this many characters

    @classmethod
    def build(cls, entries: Mapping[int, str]) -> _Matcher:
        compiled = [_compile_entry(normal) for normal in entries.values()]
        by_first: dict[str, tuple[int, ...]] = {}
        for place, entry in enumerate(compiled):
            for char in entry.first:
                by_first[char] = (*by_first.get(char, ()), place)
        return cls(
            indices=tuple(entries),
            bare=tuple(re.compile("".join(entry.bare)) for entry in compiled),
            exact=tuple(re.compile(entry.exact) if entry.exact else None for entry in compiled),
            by_first=MappingProxyType(by_first),
            scan=_scan(compiled) if compiled else None,
            # the end-of-word check looks two past the entry
            window=max((entry.span for entry in compiled), default=0) + 2,
        )

    def find(self, normal: str, bare: str) -> set[int]:
        """The places in the word list of the entries in `normal` (`bare`: its accents
        stripped)."""
        if self.scan is None:
            return set()
        found: set[int] = set()
        tried: dict[str, list[int]] = {}  # a repeated word is checked once
        marks = not normal.isascii() and bool(_ANY_MARK.search(normal))
        # The scan finds where some entry starts; only there are the single entries tried.
        # An entry's start anchor depends on the script of its first letter, which every
        # entry that `by_first` offers for that letter shares: the scan has checked it.
        for start in self.scan.finditer(bare):
            at = start.start()
            window = normal[at : at + self.window]
            if marks and at and _is_mark(normal[at - 1]) and not _UNSPACED_CHAR.match(window):
                continue  # a letter of a spaced script after a mark: inside a word
            if window not in tried:
                bare_window = window if bare is normal else bare[at : at + self.window]
                tried[window] = self._entries_at(window, bare_window, marks)
            found.update(tried[window])
        return found

    def _entries_at(self, window: str, bare_window: str, marks: bool) -> list[int]:
        """The entries that start a window of the text, never splitting a letter from its
        marks."""
        entries = []
        for place in self.by_first.get(bare_window[0], ()):
            exact = self.exact[place]
            match = exact.match(window) if exact else self.bare[place].match(bare_window)
            if match is None:
                continue
            end = match.end()
            if not (marks and end < len(window) and _is_mark(window[end])):
                entries.append(self.indices[place])
        return entries


@dataclass(frozen=True)
class WordList:
    """A compiled list; build once per policy version, reuse for many comments."""

    entries: tuple[str, ...]
    _normals: tuple[str, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        normals = tuple(normalise(entry) for entry in self.entries)
        for entry, normal in zip(self.entries, normals, strict=True):
            if not _HAS_ALNUM.search(normal):
                raise ValueError(f"word list entry {entry!r} has no letters or digits")
        object.__setattr__(self, "_normals", normals)  # the dataclass is frozen

    # Each is compiled on first use (a policy's validation compiles neither).
    @cached_property
    def _ascii(self) -> _Matcher:
        """The entries spelt in ASCII: the only ones that can occur in an all-ASCII text."""
        normals = enumerate(self._normals)
        return _Matcher.build({index: normal for index, normal in normals if normal.isascii()})

    @cached_property
    def _unicode(self) -> _Matcher:
        return _Matcher.build(dict(enumerate(self._normals)))

    def find(self, text: str) -> list[str]:
        """The entries that occur in `text`, in list order, each once."""
        normal = normalise(text)
        if normal.isascii():
            found = self._ascii.find(normal, normal)
        else:
            found = self._unicode.find(normal, _strip_accents(normal))
        return [self.entries[index] for index in sorted(found)]


def compile_words(entries: Iterable[str]) -> WordList:
    """Compile entries (blank ones ignored, duplicates kept once); ValueError names a bad one."""
    kept = [entry for entry in entries if entry.strip()]
    return WordList(tuple(dict.fromkeys(kept)))
