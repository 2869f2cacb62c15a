"""`MODERATION_PRECISION=auto`: measure at start which precision to run the model at.

Reduced precision is faster on most CPUs (bf16 where the CPU has AMX or AVX-512 BF16, dynamic
int8 on most others) but moves scores a little, and by how much depends on the model.
`choose_precision` scores a built-in set of comments at fp32 and at each candidate precision,
times every pass, and keeps the fastest candidate whose scores stay within `tolerance` of fp32;
fp32 when none does. It runs once per worker start and takes seconds (about ten for a
bert-base model on a small CPU, most of it the fp32 pass).

The comments were written for this purpose (none comes from a dataset). They mix tones, spam,
languages and lengths, from a few tokens to about two hundred, so that timings see realistic
padding and deviations see toxic and clean scores alike.
"""

from __future__ import annotations

import gc
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import torch

from workers.scoring.toxicity import precision_copy, predict

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

logger = logging.getLogger(__name__)

CANDIDATES = ("bf16", "int8")
TOLERANCE = 0.02

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
class PrecisionChoice:
    """What `choose_precision` measured and chose.

    `deviations`: for each precision measured, the largest absolute difference from the fp32
    score over all outputs and comments. `comments_per_s`: its speed on the calibration set.
    A candidate that failed is in neither.
    """

    precision: str
    deviations: dict[str, float]
    comments_per_s: dict[str, float]
    tolerance: float
    seconds: float

    @property
    def deviation(self) -> float:
        """The chosen precision's deviation from fp32 (0 for fp32 itself)."""
        return self.deviations[self.precision]

    def summary(self) -> str:
        """One line: the choice, then each precision's speed and deviation."""
        measured = "; ".join(
            f"{precision} {speed:.1f}/s, deviation {self.deviations[precision]:.4f}"
            for precision, speed in self.comments_per_s.items()
        )
        return (
            f"precision auto chose {self.precision} in {self.seconds:.1f}s "
            f"(tolerance {self.tolerance:g}): {measured}"
        )


def choose_precision(
    model: torch.nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    *,
    max_tokens: int,
    batch_size: int,
    candidates: Sequence[str] = CANDIDATES,
    tolerance: float = TOLERANCE,
    texts: Sequence[str] = CALIBRATION_COMMENTS,
) -> tuple[torch.nn.Module, PrecisionChoice]:
    """The fastest of fp32 `model` and its `candidates` copies that scores `texts` within
    `tolerance` of fp32, with the measurements. `model` itself is left unchanged."""
    if unknown := set(candidates) - set(CANDIDATES):
        raise ValueError(f"unknown candidates {sorted(unknown)} (expected some of {CANDIDATES})")
    if not texts:
        raise ValueError("no texts to calibrate on")
    started = time.perf_counter()
    runs = {"fp32": _Run(model)}
    for precision in candidates:
        try:
            runs[precision] = _Run(precision_copy(model, precision))
        except Exception as error:  # e.g. an operator this CPU build lacks at this precision
            _skip(precision, error)
    # Batches as production forms them, after an untimed warm-up round on two short texts
    # (lazy initialisation). Every model takes each batch in turn, so that load from other
    # processes (sibling workers calibrating too) slows all of them alike.
    batches = _batches(tokenizer, texts, batch_size)
    for round_number, batch in enumerate([batches[0][:2], *batches]):
        for precision, run in list(runs.items()):
            try:
                run.score(tokenizer, batch, max_tokens, timed=round_number > 0)
            except Exception as error:
                if precision == "fp32":
                    raise
                _skip(precision, error)
                del runs[precision]

    reference = runs["fp32"].scores
    deviations = {
        precision: _max_difference(run.scores, reference) for precision, run in runs.items()
    }
    comments_per_s = {precision: len(texts) / run.seconds for precision, run in runs.items()}
    within = [precision for precision in runs if deviations[precision] <= tolerance]
    best = max(within, key=comments_per_s.__getitem__)
    best_model = runs[best].model
    runs.clear()
    gc.collect()  # free the models not chosen now, not at some later collection
    choice = PrecisionChoice(
        best, deviations, comments_per_s, tolerance, time.perf_counter() - started
    )
    logger.info(
        "%s",
        choice.summary(),
        extra={
            "precision": best,
            "deviations": deviations,
            "comments_per_s": {key: round(value, 1) for key, value in comments_per_s.items()},
        },
    )
    return best_model, choice


@dataclass
class _Run:
    """One model under measurement: its scores so far and the time they took."""

    model: torch.nn.Module
    scores: list[list[float]] = field(default_factory=list)
    seconds: float = 0.0

    def score(
        self, tokenizer: PreTrainedTokenizerBase, batch: list[str], max_tokens: int, *, timed: bool
    ) -> None:
        """One forward pass over `batch`; kept and timed unless it is a warm-up."""
        started = time.perf_counter()
        rows = predict(self.model, tokenizer, batch, max_tokens=max_tokens, batch_size=len(batch))
        if timed:
            self.seconds += time.perf_counter() - started
            self.scores.extend(rows)


def _batches(
    tokenizer: PreTrainedTokenizerBase, texts: Sequence[str], batch_size: int
) -> list[list[str]]:
    """`texts` sorted by length in tokens and cut into batches, as `predict` does with texts
    that fit in one window (int8 scales its inputs per batch: the batches must be the same)."""
    lengths = [len(ids) for ids in tokenizer(list(texts), verbose=False)["input_ids"]]
    ordered = [texts[i] for i in sorted(range(len(texts)), key=lengths.__getitem__)]
    return [ordered[start : start + batch_size] for start in range(0, len(ordered), batch_size)]


def _skip(precision: str, error: Exception) -> None:
    logger.warning(
        "precision auto: skipping %s, which failed: %s: %s", precision, type(error).__name__, error
    )


def _max_difference(scores: list[list[float]], reference: list[list[float]]) -> float:
    """The largest absolute difference between two score tables (NaN if either has NaN)."""
    return (torch.tensor(scores) - torch.tensor(reference)).abs().max().item()
