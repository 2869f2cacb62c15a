# ruff: noqa: RUF001 - look-alike letters on purpose
"""`WordList.find` on long comments (20,000 characters, the API's limit), per script.

    .venv/bin/python -m bench.wordlists_find [--repeat 30]

Two lists: the 23 entries of tests/test_wordlists.py, and 300 entries (those, 268 made-up
Latin words and 9 entries in other scripts or with accents). Each comment is drawn (fixed
seed) from a small vocabulary of one language, so words repeat as they do in real comments;
"disguised" mixes Latin words with Cyrillic look-alikes in every other word, the worst case
for reading them. Prints the median and the best time of `find` per comment and list, in
milliseconds, and the time to compile each list and find in a first ASCII and a first
non-ASCII comment (a list compiles what each kind of text needs on first use).
"""

from __future__ import annotations

import argparse
import random
import re
import statistics
import time
from collections.abc import Callable, Sequence

from moderation.core.wordlists import compile_words

LENGTH = 20_000
TEST_ENTRIES = [
    "idiot", "ass", "shit", "hell", "bitch", "bigot", "loser", "kill", "bitter", "assassin",
    "moron", "filth", "buy followers", "cunt", "rapist", "penis", "cock", "sex", "cum", "arse",
    "fat", "loo", "dick",
]  # fmt: skip
OTHER_SCRIPTS = ["傻逼", "バカ", "ควาย", "바보", "сука", "дебил", "año", "connard", "salopé"]

VOCABULARY = {
    "english": "the a you are so what an idea class first this is not how we do it here "
    "thanks for sharing 1000 times I think assassin shell skills passing grasshopper 42",
    "french": "le la les un une et est très été où à ça garçon élève pêche noël crème "
    "déjà voilà connard salopé être naïf cœur",
    "spanish": "el la los un una y es muy año niño señor está qué cómo también mañana "
    "corazón pequeño",
    "russian": "я ты он она мы это как что так да нет сука дебил привет спасибо хорошо "
    "сео сор роса",
    "chinese": "你 是 个 我 的 了 在 不 有 人 这 中 大 为 上 们 傻逼 吧 很 好",
    "japanese": "お前 は バカ だ 私 です ます の に を が 日本 東京 ありがとう カタカナ",
    "thai": "แก มัน ควาย จริงๆ ผม คุณ ที่ นี่ ไป มา กิน ข้าว สวัสดี ครับ",
    "disguised": "you are an іdіоt сука ok lol привет nice ѕех thanks ceo сео the",
}


def comment(language: str, rng: random.Random) -> str:
    """About LENGTH characters of the language's words (no spaces between CJK/Thai ones)."""
    words = VOCABULARY[language].split()
    joiner = "" if language in {"chinese", "japanese", "thai"} else " "
    parts: list[str] = []
    size = 0
    while size < LENGTH:
        word = rng.choice(words)
        parts.append(word)
        size += len(word) + len(joiner)
    return joiner.join(parts)[:LENGTH]


def made_up_words(count: int, rng: random.Random) -> list[str]:
    letters = "abcdefghijklmnopqrstuvwxyz"
    return ["".join(rng.choices(letters, k=rng.randint(4, 9))) for _ in range(count)]


def first_finds(entries: list[str]) -> None:
    re.purge()  # as in a fresh worker
    words = compile_words(entries)
    words.find("an ASCII comment")
    words.find("un commentaire accentué")


def timed(function: Callable[[], object], repeat: int) -> list[float]:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return times


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=30)
    args = parser.parse_args(argv)
    rng = random.Random(13)
    large = TEST_ENTRIES + made_up_words(300 - len(TEST_ENTRIES) - len(OTHER_SCRIPTS), rng)
    lists = {"23 entries": TEST_ENTRIES, "300 entries": large + OTHER_SCRIPTS}
    for name, entries in lists.items():
        compile_s = min(timed(lambda entries=entries: first_finds(entries), 5))
        print(f"compile {name} and find in a first comment of each kind: {compile_s * 1000:.1f} ms")
    print(f"{'comment':<10} {'list':<12} {'median ms':>10} {'best ms':>8}")
    for language in VOCABULARY:
        text = comment(language, rng)
        for name, entries in lists.items():
            words = compile_words(entries)
            times = timed(lambda words=words, text=text: words.find(text), args.repeat)
            median, best = statistics.median(times) * 1000, min(times) * 1000
            print(f"{language:<10} {name:<12} {median:>10.2f} {best:>8.2f}")


if __name__ == "__main__":
    main()
