"""Readers for the public labeled data sets in `../shared/data` (read in place, never copied).

Used by the script that builds the shipped spam model, by the benchmarks and by the tests that
rebuild the model. `../shared/data/README.md` says what each set is and its license.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

#: Where the data sets live, seen from a checkout of this repository.
DEFAULT_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"


@dataclass(frozen=True)
class Example:
    """One labeled text: where it comes from ("01" for a YouTube video, "sms", ...), the text,
    and its label (1: spam, or for tweets: hate speech)."""

    group: str
    text: str
    label: int


def youtube(data: Path = DEFAULT_DATA) -> list[Example]:
    """YouTube Spam Collection, videos 01-03: the CONTENT column (the DATE column leaks the
    label in some files), grouped by video."""
    examples = []
    for path in sorted((data / "youtube-spam").glob("Youtube0*.csv")):
        video = path.stem.removeprefix("Youtube")[:2]
        with path.open(encoding="utf-8", newline="") as handle:
            for row in csv.DictReader(handle):
                examples.append(Example(video, row["CONTENT"], int(row["CLASS"])))
    return examples


def sms(data: Path = DEFAULT_DATA) -> list[Example]:
    """SMS Spam Collection: `label<TAB>text`, split on the first tab (the text is not quoted)."""
    examples = []
    with (data / "sms-spam" / "SMSSpamCollection").open(encoding="utf-8") as handle:
        for line in handle:
            label, _, text = line.rstrip("\r\n").partition("\t")
            if label in ("ham", "spam"):
                examples.append(Example("sms", text, int(label == "spam")))
    return examples


def wikipedia_talk(data: Path = DEFAULT_DATA) -> list[Example]:
    """The Jigsaw sample: Wikipedia talk-page comments, none of them spam (label 0), in file
    order. Even rows train the spam model; odd rows measure how often it holds ordinary
    discussion."""
    with (data / "jigsaw-toxic" / "train_sample.csv").open(encoding="utf-8", newline="") as handle:
        return [Example("wikipedia", row["comment_text"], 0) for row in csv.DictReader(handle)]


def tweets(data: Path = DEFAULT_DATA) -> list[tuple[Example, str]]:
    """Davidson et al.'s tweets with their class: label 1 for hate speech; the class name
    ("hate", "offensive", "neither") beside each."""
    names = {"0": "hate", "1": "offensive", "2": "neither"}
    path = data / "davidson-offensive" / "labeled_data.csv"
    with path.open(encoding="utf-8", newline="") as handle:
        return [
            (Example("tweets", row["tweet"], int(row["class"] == "0")), names[row["class"]])
            for row in csv.DictReader(handle)
        ]


def available(data: Path = DEFAULT_DATA) -> bool:
    """Whether the data sets are there (they are in CI and beside every checkout here)."""
    return (data / "youtube-spam").is_dir() and (data / "sms-spam").is_dir()
