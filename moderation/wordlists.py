"""Banned / suspect word matching that resists common evasions.

Both the configured entries and the comment go through `normalise`, which folds case,
compatibility forms (full-width, ligatures, maths letters), diacritics, invisible characters,
a few Cyrillic/Greek look-alikes, spaced-out letters ("i d i o t") and digit leetspeak, and
shortens runs of three or more equal characters to two. Each entry then becomes a regex over
the normalised text in which every letter also accepts its symbol spellings (a -> a or @,
i -> i, ! or |, ...) and a stretched or single form of itself, anchored on word boundaries so
that "class" never matches "ass".

Leetspeak is split in two: digits are rewritten in the text, but only next to a letter (so
"1000" stays a number and never matches "loo"), while the symbols @ $ ! | + stay in the text
and the entry patterns accept them. "1" and "|" may be i or l: the text keeps both as "|",
and both the i and the l of an entry accept "|".
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, field
from itertools import groupby
from typing import NamedTuple

# Word characters as far as spelling goes: letters, digits and the leetspeak symbols. "_" is
# turned into a space first, so \w here means a letter or a digit.
_CHAR = r"[\w@$!|+]"
_WORD = re.compile(rf"{_CHAR}+")
# Three or more lone characters with the same 1-3 spaces or punctuation between each two:
# "i d i o t", "i.d.i.o.t", "I. D. I. O. T." (but not "I'm 5" or "7 a.m.").
_SPACED_OUT = re.compile(
    rf"(?<!{_CHAR}){_CHAR}(?P<gap>[^\w@$!|+]{{1,3}}){_CHAR}(?:(?P=gap){_CHAR}(?!{_CHAR}))+"
)
_DIGIT = re.compile(r"\d")
_NUMBER = re.compile(r"(?<!\w)(\d++)(?![^\W\d])")  # digits with no letter on either side
_LONG_RUN = re.compile(r"(\D)\1\1+")  # digits are left alone: "1000" is a number
_HAS_ALNUM = re.compile(r"\w")

# Digits read as letters next to a letter; "1" joins "|" as "i or l".
_LEET_DIGITS = str.maketrans("01345789", "o|eastbg")
# Letters that survive NFKD unchanged, and common Cyrillic/Greek look-alikes of Latin letters.
_FOLD = str.maketrans(
    {
        "\u00e6": "ae",  # ae ligature
        "\u0153": "oe",  # oe ligature
        "\u00f8": "o",  # o with stroke
        "\u0142": "l",  # l with stroke
        "\u0111": "d",  # d with stroke
        "\u00f0": "d",  # eth
        "\u0131": "i",  # dotless i
        "\u0430": "a",  # Cyrillic a
        "\u0435": "e",  # Cyrillic ie
        "\u043e": "o",  # Cyrillic o
        "\u0440": "p",  # Cyrillic er
        "\u0441": "c",  # Cyrillic es
        "\u0443": "y",  # Cyrillic u
        "\u0445": "x",  # Cyrillic ha
        "\u0456": "i",  # Cyrillic byelorussian-ukrainian i
        "\u0455": "s",  # Cyrillic dze
        "\u0458": "j",  # Cyrillic je
        "\u03b1": "a",  # Greek alpha
        "\u03bf": "o",  # Greek omicron
        "\u03b9": "i",  # Greek iota
        "\u03ba": "k",  # Greek kappa
        "\u03bd": "v",  # Greek nu
        "\u03c1": "p",  # Greek rho
    }
)
_DROPPED = {"Mn", "Me", "Cf"}  # combining marks; zero-width characters and soft hyphens

# In entries, symbols stand for their letter; in patterns, letters accept their symbols.
_ENTRY_SYMBOLS = str.maketrans("@$!+", "asit")
_ACCEPTS = {"a": "a@", "s": "s$", "i": "i!|", "l": "l|", "|": "il|!", "t": "t+"}
# Word boundaries: no letter or digit on the outside, nor a letter hidden behind "@" or "$"
# ("cl@ss" is one word).
_START = r"(?<!\w)(?<!\w[@$])"
_END = r"(?!\w)(?![@$]\w)"
# Between the words of a phrase: a few spaces or punctuation, or nothing ("buyfollowers").
_GAP_MAX = 8
_GAP = rf"\W{{0,{_GAP_MAX}}}"


def _fold_unicode(text: str) -> str:
    """Casefold, decompose, drop marks and invisible characters, map look-alikes."""
    decomposed = unicodedata.normalize("NFKD", unicodedata.normalize("NFKD", text).casefold())
    # Look at each distinct character once, not at every character of a long comment.
    table = {ord(c): None for c in set(decomposed) if unicodedata.category(c) in _DROPPED}
    return unicodedata.normalize("NFC", decomposed.translate(table | _FOLD))


def _join_spaced(match: re.Match[str]) -> str:
    return "".join(_WORD.findall(match.group()))


def _read_leet(text: str) -> str:
    """Digits next to a letter are letters ("1d10t", "5hit"); others are a number ("1000")."""
    if not _DIGIT.search(text):
        return text
    parts = _NUMBER.split(text)  # text, number, text, number, ..., text
    parts[::2] = [part.translate(_LEET_DIGITS) for part in parts[::2]]
    return "".join(parts)


def normalise(text: str) -> str:
    """Fold `text` to the canonical spelling that entries are matched against."""
    text = text.lower() if text.isascii() else _fold_unicode(text)
    text = _SPACED_OUT.sub(_join_spaced, text.replace("_", " "))
    text = _read_leet(text)
    return _LONG_RUN.sub(r"\1\1", text)


class _Compiled(NamedTuple):
    atoms: list[str]  # regex pieces: a letter with its repeats, or the gap between two words
    first: str  # the characters of the normalised text the first piece accepts
    span: int  # the most characters of normalised text the pieces can cover


def _compile_entry(entry: str) -> _Compiled:
    normal = normalise(entry)
    if not _HAS_ALNUM.search(normal):
        raise ValueError(f"word list entry {entry!r} has no letters or digits")
    words = _WORD.findall(normal)
    atoms: list[str] = []
    span = 0
    for word in words:
        if atoms:
            atoms.append(_GAP)
            span += _GAP_MAX
        for char, run in groupby(word.translate(_ENTRY_SYMBOLS)):
            count = len(list(run))
            accepted = _ACCEPTS.get(char, char)
            pattern = f"[{re.escape(accepted)}]" if len(accepted) > 1 else re.escape(char)
            if char.isdigit():  # digits are never stretched or shortened
                atoms.append(pattern * count)
            else:  # the text holds at most two in a row: "ass" needs two s, "idiot" one or two
                atoms.append(f"{pattern}{pattern}?" if count == 1 else pattern * 2)
            span += count if char.isdigit() else 2
    first = words[0][0].translate(_ENTRY_SYMBOLS)
    return _Compiled(atoms, _ACCEPTS.get(first, first), span)


def _trie_pattern(sequences: list[list[str]]) -> str:
    """One regex for many atom sequences, sharing common prefixes so each position is cheap."""
    trie: dict = {}
    for atoms in sequences:
        node = trie
        for atom in atoms:
            node = node.setdefault(atom, {})
        node[""] = {}

    def emit(node: dict) -> str:
        branches = [atom + emit(child) if atom else _END for atom, child in node.items()]
        return branches[0] if len(branches) == 1 else "(?:" + "|".join(branches) + ")"

    return emit(trie)


@dataclass(frozen=True)
class WordList:
    """A compiled list; build once per policy version, reuse for many comments."""

    entries: tuple[str, ...]
    _patterns: tuple[re.Pattern[str], ...] = field(init=False, repr=False, compare=False)
    _by_first: dict[str, tuple[int, ...]] = field(init=False, repr=False, compare=False)
    _scan: re.Pattern[str] | None = field(init=False, repr=False, compare=False)
    _window: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        compiled = [_compile_entry(entry) for entry in self.entries]
        by_first: dict[str, tuple[int, ...]] = {}
        for index, entry in enumerate(compiled):
            for char in entry.first:
                by_first[char] = (*by_first.get(char, ()), index)
        trie = _trie_pattern([entry.atoms for entry in compiled])
        set_ = object.__setattr__  # the dataclass is frozen
        set_(self, "_patterns", tuple(re.compile("".join(e.atoms) + _END) for e in compiled))
        set_(self, "_by_first", by_first)
        set_(self, "_scan", re.compile(f"{_START}(?={trie})") if compiled else None)
        # Whether an entry matches at a position depends on this many characters from there
        # (the end-of-word check looks two past the entry).
        set_(self, "_window", max((entry.span for entry in compiled), default=0) + 2)

    def find(self, text: str) -> list[str]:
        """The entries that occur in `text`, in list order, each once."""
        if self._scan is None:
            return []
        normal = normalise(text)
        found: set[int] = set()
        tried: dict[str, list[int]] = {}  # a repeated word is checked once
        # The scan finds where some entry starts; only there are the single entries tried.
        for start in self._scan.finditer(normal):
            window = normal[start.start() : start.start() + self._window]
            if window not in tried:
                candidates = self._by_first.get(window[0], ())
                tried[window] = [i for i in candidates if self._patterns[i].match(window)]
            found.update(tried[window])
        return [self.entries[index] for index in sorted(found)]


def compile_words(entries: Iterable[str]) -> WordList:
    """Compile entries (blank ones ignored, duplicates kept once); ValueError names a bad one."""
    kept = [entry for entry in entries if entry.strip()]
    return WordList(tuple(dict.fromkeys(kept)))
