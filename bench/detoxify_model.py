"""A bert-base sized Detoxify checkpoint with random weights, built offline for benchmarks.

Detoxify's real weights cannot be downloaded here, and compute cost does not depend on weight
values, so the benchmark builds a checkpoint with the same architecture as Detoxify `original`
(transformers `BertConfig()` defaults: hidden 768, 12 layers, 12 heads, intermediate 3072,
vocabulary 30522; 6 labels) and saves it the way `tests/support/tiny_detoxify.py` does, so it
loads through `Detoxify(checkpoint=..., huggingface_config_path=...)` and through the service's
`MODERATION_TOXICITY_MODEL=detoxify:<path>`.

There is no bert-base-uncased vocabulary offline either. To keep the number of tokens per
comment realistic, a WordPiece vocabulary is built from the YouTube and Jigsaw comments in
../shared/data: the special tokens, every character (alone and as a "##" continuation), the
words seen at least twice, then the most frequent word-start and "##" continuation pieces of
the rarer words, padded with `[unusedN]` tokens (never matched, as in BERT's own vocabulary) up
to 30522 entries. The build is cached under `bench/.cache/`.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from bench.comments import DATA, jigsaw_comments, youtube_comments

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / "bench" / ".cache"

#: Bump to rebuild cached checkpoints after changing how they are made.
BUILD_VERSION = 1
CLASSES = ("toxic", "severe_toxic", "obscene", "threat", "insult", "identity_hate")
SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")  # [PAD] must be id 0
VOCAB_SIZE = 30522  # BertConfig().vocab_size, the bert-base-uncased vocabulary size
MODEL_MAX_LENGTH = 512  # bert-base-uncased's tokenizer limit
#: Pieces taken from rare words: word starts and "##" continuations of these lengths.
PIECE_LENGTHS = range(2, 9)
MIN_WORD_COUNT = 2
MIN_PIECE_COUNT = 3
#: Entries kept for `[unusedN]` padding at least (bert-base-uncased has 994 of them).
MIN_UNUSED = 1000


@dataclass(frozen=True)
class BenchModel:
    """Where a built checkpoint lives, and what its vocabulary is made of."""

    checkpoint: Path
    config_dir: Path
    info: dict


def bert_words(texts: Iterable[str]) -> Counter[str]:
    """Word counts after BERT's own normalisation (lower case, accents stripped) and
    pre-tokenisation (whitespace and punctuation), as the WordPiece model will see them."""
    from tokenizers import normalizers, pre_tokenizers

    normalizer = normalizers.BertNormalizer(lowercase=True)
    pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    counts: Counter[str] = Counter()
    for text in texts:
        normalized = normalizer.normalize_str(text)
        counts.update(word for word, _ in pre_tokenizer.pre_tokenize_str(normalized))
    return counts


def build_vocab(words: Counter[str], size: int = VOCAB_SIZE) -> tuple[list[str], dict]:
    """A WordPiece vocabulary of exactly `size` entries, and counts of what it holds."""
    chars = sorted({char for word in words for char in word})
    frequent = [w for w, n in sorted(words.items(), key=lambda kv: (-kv[1], kv[0])) if n > 1]
    frequent = [w for w in frequent if words[w] >= MIN_WORD_COUNT and len(w) > 1]
    pieces: Counter[str] = Counter()
    for word, count in words.items():
        if count >= MIN_WORD_COUNT:
            continue
        for length in PIECE_LENGTHS:
            if len(word) > length:
                pieces[word[:length]] += count
            for start in range(1, len(word) - length + 1):
                pieces["##" + word[start : start + length]] += count
    vocab = list(SPECIAL_TOKENS)
    vocab += chars + ["##" + char for char in chars]
    vocab += frequent
    seen = set(vocab)
    room = size - MIN_UNUSED - len(vocab)
    ranked = sorted(pieces.items(), key=lambda kv: (-kv[1], kv[0]))
    added = [p for p, n in ranked if n >= MIN_PIECE_COUNT and p not in seen][: max(room, 0)]
    vocab += added
    real = len(vocab)
    vocab += [f"[unused{n}]" for n in range(size - real)]
    info = {
        "characters": len(chars),
        "words": len(frequent),
        "pieces": len(added),
        "unused_padding": size - real,
    }
    return vocab[:size], info


def data_fingerprint(data: Path) -> str:
    """Changes when the source files change (sizes and names are enough for read-only data)."""
    digest = hashlib.sha256(f"v{BUILD_VERSION}".encode())
    for path in sorted([*(data / "youtube-spam").glob("*.csv"), data / "jigsaw-toxic"]):
        target = path / "train_sample.csv" if path.is_dir() else path
        digest.update(f"{target.name}:{target.stat().st_size}".encode())
    return digest.hexdigest()[:16]


def bench_model(data: Path = DATA, cache: Path = CACHE) -> BenchModel:
    """The cached bert-base checkpoint, built first when missing or out of date."""
    directory = cache / f"detoxify-bert-base-{data_fingerprint(data)}"
    # build.json is written last, so a directory without it is an interrupted build. The
    # checkpoint names its config directory by absolute path, so it is built in place.
    if not (directory / "build.json").is_file():
        shutil.rmtree(directory, ignore_errors=True)
        _build(directory, data)
    return _located(directory)


def _located(directory: Path) -> BenchModel:
    info = json.loads((directory / "build.json").read_text())
    return BenchModel(directory / "detoxify-bert-base.ckpt", directory / "config", info)


def _build(directory: Path, data: Path) -> None:
    import torch
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizer

    from tests.support.tiny_detoxify import save_detoxify_checkpoint

    config_dir = directory / "config"
    config_dir.mkdir(parents=True)
    vocab, vocab_info = build_vocab(bert_words(youtube_comments(data) + jigsaw_comments(data)))
    tokenizer = BertTokenizer(
        vocab={token: index for index, token in enumerate(vocab)},
        model_max_length=MODEL_MAX_LENGTH,
    )
    tokenizer.save_pretrained(config_dir)
    config = BertConfig(num_labels=len(CLASSES))
    if config.vocab_size != len(vocab):
        raise RuntimeError(f"vocabulary has {len(vocab)} entries, config {config.vocab_size}")
    config.save_pretrained(config_dir)

    torch.manual_seed(0)
    model = BertForSequenceClassification(config).eval()  # random weights: no training
    save_detoxify_checkpoint(model, config_dir, directory / "detoxify-bert-base.ckpt")
    info = {
        "build_version": BUILD_VERSION,
        "parameters": sum(p.numel() for p in model.parameters()),
        "hidden": config.hidden_size,
        "layers": config.num_hidden_layers,
        "heads": config.num_attention_heads,
        "intermediate": config.intermediate_size,
        "vocab": {"size": len(vocab), **vocab_info},
    }
    (directory / "build.json").write_text(json.dumps(info, indent=2) + "\n")
