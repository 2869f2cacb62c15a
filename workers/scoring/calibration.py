"""Which engine to score with: measured once per model and machine, shared by every worker.

Reduced precision and other runtimes are faster on most CPUs (bf16 where the CPU has AMX or
AVX-512 BF16, int8 on VNNI; ONNX Runtime and OpenVINO fuse BERT's operators) but move scores a
little, and by how much depends on the model. `choose_engine` scores a set of comments with the
fp32 torch model and with each candidate engine (`workers.scoring.engines`), times every pass,
and keeps the fastest candidate whose scores stay within `tolerance` of fp32. The comments are
the built-in ones below plus, when the service already holds some, real comments from Redis.

The built-in comments were written for this purpose (none comes from a dataset). They mix
tones, spam, languages and lengths, from a few tokens to about two hundred, so that timings see
realistic padding and deviations see toxic and clean scores alike.
"""

from __future__ import annotations

import gc
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import torch

from workers.scoring.engines import (
    Candidate,
    Engine,
    build_engine,
    candidates,
    machine_signature,
    model_checksum,
)
from workers.scoring.torch_engine import TorchEngine
from workers.scoring.toxicity import EngineRequest, predict

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

logger = logging.getLogger(__name__)

TOLERANCE = 0.02
REFERENCE = Candidate("torch", "fp32")
#: Bumped when what is measured changes, so that measurements kept in Redis are not reused.
MEASUREMENT_VERSION = 1

CALIBRATION_COMMENTS: tuple[str, ...] = (
    "+1",
    "meh. seen better from this channel",
    "Great write-up, thanks for taking the time!",
    "what an absolute muppet of a referee",
    "who even reads this garbage anymore",
    "Amazing photos! Which lens did you use for the harbour shots at dusk?",
    "LMAO this comment section is a dumpster fire 🔥🔥🔥",
    "dumbest take I've read all week, and I read a LOT of dumb takes",
    "kkkkk que vergonha alheia, apaga isso antes que alguém veja",
    "とても分かりやすい説明でした。続編も楽しみにしています！",  # noqa: RUF001 (Japanese punctuation)
    "Stop deleting my comments, you cowards. Censorship much???",
    "check out my channel, I post guitar covers every friday 🎸 subscribe pls!! 🙏",
    "Free iPhone 15 giveaway 🎁 click the link in my bio before it ends TONIGHT",
    "this is fucking ridiculous, the app crashed again and wiped all my notes from the trip",
    "you're a clown and so is everyone who voted for this nonsense, get a clue",
    "Muy buen artículo, gracias por compartir. ¿Va a haber una segunda parte sobre Valencia?",
    "Ich verstehe nicht, warum der Artikel die Baukosten mit keinem Wort erwähnt.",
    "C'est n'importe quoi, l'auteur n'a clairement jamais mis les pieds à Lyon un samedi soir.",
    "Earn $500/day from home!!! No experience needed, DM me or visit "
    "http://quick-cash-today.example.com/start?ref=8812",
    "Nice video. Visit www.cheap-followers.example.net and get 10k REAL followers in 24h, "
    "guaranteed or your money back",
    "Keep talking like that and see what happens when I find out which street you live on.",
    "Go back to wherever you came from, people like you ruin every neighbourhood you move into.",
    "ok but the translation in paragraph 3 is wrong: 'sobremesa' isn't dessert, it's the "
    "chatting after the meal lol",
    "Thank you!!! Been searching for this fix for two days, step 4 (clearing the cache) did it.",
    "Respectfully, you have no idea what you are talking about. Read the actual bill before "
    "writing a whole column about it.",
    "I disagree with the conclusion, but I appreciate that you linked the raw data so the rest "
    "of us can check the numbers ourselves.",
    "Can someone explain why the chart on the left starts at 40 instead of zero? It makes a "
    "two percent difference look enormous.",
    "As a nurse who worked nights for eleven years, I can tell you the staffing numbers in this "
    "piece are optimistic at best. On a good night we had one nurse for nine patients, and "
    "nobody from management ever came down to see it.",
    "The update broke dark mode on Android 14. Pixel 7, app version 3.2.1. Steps: open "
    "settings, toggle the theme, go back, and the app restarts in light mode. Reinstalling "
    "did not help, and neither did clearing storage.",
    "wow wow WOW 😍 best recipe on this site by far, my kids actually ate the spinach and asked "
    "for seconds. I added a bit of lemon zest and some chilli flakes and swapped the cream "
    "for greek yoghurt, still perfect!!",
    "Honestly the second half of the article falls apart. You cite a single survey from 2011 "
    "with four hundred respondents and then build the entire argument on it, while ignoring "
    "the three much larger studies that came out since. I expected better from a paper that "
    "likes to lecture everyone else about evidence. Do the work or don't publish.",
    "Long-time reader, first comment. I live two streets from the proposed depot and I want to "
    "add some context the article leaves out. The site floods almost every winter; the photo "
    "at the top was taken in August. The council's own assessment from three years ago said "
    "drainage would need to be rebuilt before anything heavy could go there, and that work "
    "has not been budgeted. There is also a primary school on the corner, so the lorry route "
    "in the plan goes right past the gate at drop-off time. None of this means the depot "
    "should not be built somewhere, and I agree the current one is falling apart, but the "
    "consultation closes on Friday and most people on our road only heard about it from a "
    "leaflet last week. If you care about this, write to the planning office and ask for the "
    "flood report and the traffic survey to be published before any decision is taken.",
    "What a load of crap. Did anyone at this so-called newspaper even proofread this before "
    "hitting publish? Half the names are misspelled, the dates are wrong, and the quote in the "
    "headline was never said by the guy. You people are a fucking embarrassment and you wonder "
    "why nobody pays for news anymore. Fire whoever wrote this and the idiot editor who "
    "waved it through, then print a correction on the front page instead of hiding it at the "
    "bottom of page twelve like last time.",
)


@dataclass(frozen=True)
class EngineChoice:
    """What `choose_engine` measured and chose (kept in Redis for the other workers).

    `deviations`: for each engine measured (by name, `torch-bf16`), the largest absolute
    difference from the fp32 torch score over all outputs and comments. `comments_per_s`: its
    speed on the calibration comments. A candidate that failed is in neither.
    """

    engine: str
    deviations: dict[str, float]
    comments_per_s: dict[str, float]
    tolerance: float
    seconds: float
    comments: int

    @property
    def candidate(self) -> Candidate:
        return Candidate.parse(self.engine)

    @property
    def deviation(self) -> float:
        """The chosen engine's deviation from fp32 (0 for fp32 torch itself)."""
        return self.deviations[self.engine]

    def summary(self) -> str:
        """One line: the choice, then each engine's speed and deviation."""
        measured = "; ".join(
            f"{engine} {speed:.1f}/s, deviation {self.deviations[engine]:.4f}"
            for engine, speed in self.comments_per_s.items()
        )
        return (
            f"engine auto chose {self.engine} in {self.seconds:.1f}s on {self.comments} "
            f"comments (tolerance {self.tolerance:g}): {measured}"
        )

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EngineChoice:
        return cls(**{key: data[key] for key in cls.__dataclass_fields__})


def select_engine(
    model: torch.nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    request: EngineRequest,
    *,
    max_tokens: int,
    batch_size: int,
) -> tuple[Engine, EngineChoice | None]:
    """The engine to score with: the one `request` names, or (with `auto` in it) the fastest
    accurate one, as measured by the first worker with this model on this kind of machine and
    kept by `request.choices` (measured here, and not kept, without it)."""
    options = candidates(request.runtime, request.precision)
    if options == [REFERENCE]:
        return TorchEngine(model, tokenizer), None
    real = request.real_comments() if request.real_comments and len(options) > 1 else ()
    texts = (*CALIBRATION_COMMENTS, *real)
    checksum = model_checksum(model)
    windows = tokenizer(list(texts), truncation=True, max_length=max_tokens)["input_ids"]

    def build(candidate: Candidate) -> Engine:
        return build_engine(
            model,
            tokenizer,
            candidate,
            cache_dir=request.cache_dir,
            checksum=checksum,
            threads=request.threads,
            calibration_windows=windows,
        )

    if len(options) == 1:
        return build(options[0]), None

    def measure_here() -> tuple[Engine, EngineChoice]:
        return choose_engine(
            model,
            tokenizer,
            options,
            build,
            max_tokens=max_tokens,
            batch_size=batch_size,
            texts=texts,
        )

    if request.choices is None:
        return measure_here()
    measured: list[Engine] = []

    def measure_and_keep() -> dict[str, Any]:
        engine, choice = measure_here()
        measured.append(engine)
        return choice.as_dict()

    signature = {
        "version": MEASUREMENT_VERSION,
        "model": checksum,
        **machine_signature(),
        "threads": request.threads,
        "pass_size": batch_size,
        "max_tokens": max_tokens,
        "candidates": [option.name for option in options],
        "tolerance": TOLERANCE,
    }
    kept, _ = request.choices.once(signature, measure_and_keep)
    choice = EngineChoice.from_dict(kept)
    if measured:
        return measured[0], choice
    logger.info("engine auto: using %s, measured by an earlier worker", choice.engine)
    try:
        return build(choice.candidate), choice
    except Exception as error:  # e.g. no writable cache directory for its export on this host
        logger.warning(
            "engine auto: %s, measured by an earlier worker, does not build here (%s: %s); "
            "measuring here, for this worker only",
            choice.engine,
            type(error).__name__,
            str(error),
        )
        return measure_here()


def choose_engine(
    model: torch.nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    candidates: Sequence[Candidate],
    build: Callable[[Candidate], Engine],
    *,
    max_tokens: int,
    batch_size: int,
    tolerance: float = TOLERANCE,
    texts: Sequence[str] = CALIBRATION_COMMENTS,
) -> tuple[Engine, EngineChoice]:
    """The fastest of `candidates` (built by `build`) that scores `texts` within `tolerance`
    of the fp32 torch `model`, with the measurements. `model` itself is left unchanged.

    Candidates are measured one after another, each freed unless it is the fastest so far, so
    that memory holds at most three models at once however many runtimes are installed. Then
    the two fastest accurate ones are timed again side by side, batch by batch in turn, so
    that a burst of other load during one candidate's turn does not decide the choice."""
    if not texts:
        raise ValueError("no texts to calibrate on")
    if not candidates:
        raise ValueError("no candidate engines")
    started = time.perf_counter()
    batches = _batches(tokenizer, texts, batch_size)
    reference = _Measured.of(TorchEngine(model, tokenizer), tokenizer, batches, max_tokens)
    deviations: dict[str, float] = {}
    comments_per_s: dict[str, float] = {}
    best: tuple[Candidate, Engine] | None = None
    for candidate in candidates:
        engine: Engine | None = None
        measured: _Measured | None = None
        if candidate == REFERENCE:
            measured, engine = reference, reference.engine
        else:
            try:
                engine = build(candidate)
                measured = _Measured.of(engine, tokenizer, batches, max_tokens)
            except Exception as error:  # e.g. an operator this CPU or runtime lacks
                _skip(candidate.name, error)
        if engine is not None and measured is not None:
            deviations[candidate.name] = _max_difference(measured.scores, reference.scores)
            comments_per_s[candidate.name] = len(texts) / measured.seconds
            fastest = best is None or comments_per_s[candidate.name] > comments_per_s[best[0].name]
            if deviations[candidate.name] <= tolerance and fastest:
                best = (candidate, engine)
        engine = measured = None
        gc.collect()  # free a model not chosen now, not at some later collection
    if best is None:
        raise RuntimeError(
            f"no engine scored within {tolerance:g} of fp32 ({_described(deviations)})"
        )
    best = _duel(
        best,
        deviations,
        comments_per_s,
        tolerance,
        build,
        reference,
        tokenizer,
        batches,
        max_tokens,
    )
    choice = EngineChoice(
        best[0].name,
        deviations,
        comments_per_s,
        tolerance,
        time.perf_counter() - started,
        len(texts),
    )
    logger.info(
        "%s",
        choice.summary(),
        extra={
            "engine": choice.engine,
            "deviations": deviations,
            "comments_per_s": {key: round(value, 1) for key, value in comments_per_s.items()},
        },
    )
    return best[1], choice


def _duel(
    best: tuple[Candidate, Engine],
    deviations: dict[str, float],
    comments_per_s: dict[str, float],
    tolerance: float,
    build: Callable[[Candidate], Engine],
    reference: _Measured,
    tokenizer: PreTrainedTokenizerBase,
    batches: list[list[str]],
    max_tokens: int,
) -> tuple[Candidate, Engine]:
    """The faster of `best` and the runner-up, timed again batch by batch in turn (their
    speeds in `comments_per_s` are replaced by these)."""
    accurate = [name for name, deviation in deviations.items() if deviation <= tolerance]
    others = sorted((n for n in accurate if n != best[0].name), key=comments_per_s.__getitem__)
    if not others:
        return best
    runner_up = Candidate.parse(others[-1])
    try:
        engine = reference.engine if runner_up == REFERENCE else build(runner_up)
    except Exception as error:
        _skip(runner_up.name, error)
        return best
    pair = [best, (runner_up, engine)]
    seconds = [0.0, 0.0]
    for batch in batches:
        for index, (_, each) in enumerate(pair):
            timer = time.perf_counter()
            predict(each, tokenizer, batch, max_tokens=max_tokens, batch_size=len(batch))
            seconds[index] += time.perf_counter() - timer
    count = sum(map(len, batches))
    for (candidate, _), spent in zip(pair, seconds, strict=True):
        comments_per_s[candidate.name] = count / spent
    return pair[0] if seconds[0] <= seconds[1] else pair[1]


@dataclass
class _Measured:
    """One engine's scores of the calibration batches and the time they took."""

    engine: Engine
    scores: list[list[float]]
    seconds: float

    @classmethod
    def of(
        cls,
        engine: Engine,
        tokenizer: PreTrainedTokenizerBase,
        batches: list[list[str]],
        max_tokens: int,
    ) -> _Measured:
        """Batches as production forms them, after an untimed warm-up pass on two short texts
        (lazy initialisation, a runtime's first compilation)."""
        predict(engine, tokenizer, batches[0][:2], max_tokens=max_tokens, batch_size=2)
        scores: list[list[float]] = []
        started = time.perf_counter()
        for batch in batches:
            scores += predict(
                engine, tokenizer, batch, max_tokens=max_tokens, batch_size=len(batch)
            )
        return cls(engine, scores, time.perf_counter() - started)


def _batches(
    tokenizer: PreTrainedTokenizerBase, texts: Sequence[str], batch_size: int
) -> list[list[str]]:
    """`texts` sorted by length in tokens and cut into batches, as `predict` does with texts
    that fit in one window (int8 scales its inputs per batch: the batches must be the same)."""
    lengths = [len(ids) for ids in tokenizer(list(texts), verbose=False)["input_ids"]]
    ordered = [texts[i] for i in sorted(range(len(texts)), key=lengths.__getitem__)]
    return [ordered[start : start + batch_size] for start in range(0, len(ordered), batch_size)]


def _skip(engine: str, error: Exception) -> None:
    # The error as text: a log record that kept the exception would keep its engine alive.
    logger.warning(
        "engine auto: skipping %s, which failed: %s: %s", engine, type(error).__name__, str(error)
    )


def _described(deviations: dict[str, float]) -> str:
    return ", ".join(f"{name} {value:.4f}" for name, value in deviations.items()) or "none ran"


def _max_difference(scores: list[list[float]], reference: list[list[float]]) -> float:
    """The largest absolute difference between two score tables (NaN if either has NaN)."""
    return (torch.tensor(scores) - torch.tensor(reference)).abs().max().item()
