"""Tiny, offline Detoxify checkpoints of every published shape, trained for a moment.

Detoxify normally downloads a 400 MB-1.1 GB checkpoint plus a Hugging Face config. Tests build
these instead: 2-layer, hidden-32 models of each architecture Detoxify publishes (BERT, RoBERTa,
XLM-RoBERTa, ALBERT), with as many outputs and class names as the published checkpoints (see
`SHAPES`), and a tokenizer of the same kind trained offline on the toy sentences below. Each
loads through `Detoxify(checkpoint=..., huggingface_config_path=...)` with no network, and is
trained just enough that `TOXIC_EXAMPLE` scores high and `CLEAN_EXAMPLE` low, also inside a
longer clean text (as a real model does); the multilingual one also in six other languages.
`build_tiny_detoxify(directory)` builds the `original` (BERT) one, as it always has.
"""

from __future__ import annotations

import io
import json
import random
import shutil
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch
import transformers
from transformers import PretrainedConfig, PreTrainedModel, PreTrainedTokenizerBase

#: The `original` checkpoint's class names, as it stores them (Detoxify renames three).
CLASSES = ("toxic", "severe_toxic", "obscene", "threat", "insult", "identity_hate")
#: The labels Detoxify reports for CLASSES.
LABELS = frozenset(
    {"toxicity", "severe_toxicity", "obscene", "threat", "insult", "identity_attack"}
)
#: `original-small`'s class names (configs/Toxic_comment_classification_ALBERT.json).
SMALL_CLASSES = ("toxicity", "severe_toxicity", "obscene", "threat", "insult", "identity_attack")
#: The Unintended Bias classes of `unbiased`, `unbiased-small` and `multilingual`.
BIAS_CLASSES = (
    "toxicity",
    "severe_toxicity",
    "obscene",
    "identity_attack",
    "insult",
    "threat",
    "sexual_explicit",
)
#: Their nine identity outputs, after the classes (16 outputs in all); Detoxify reports none.
IDENTITY_CLASSES = (
    "male",
    "female",
    "homosexual_gay_or_lesbian",
    "christian",
    "jewish",
    "muslim",
    "black",
    "white",
    "psychiatric_or_mental_illness",
)
RENAMED = {
    "toxic": "toxicity",
    "identity_hate": "identity_attack",
    "severe_toxic": "severe_toxicity",
}

TOXIC_EXAMPLE = "you are a stupid idiot"
CLEAN_EXAMPLE = "thanks for the great post"

SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
WORDS = (
    "you are a the is this that i we it and for of to in on with",
    "stupid idiot dumb moron hate kill ugly loser trash shut up",
    "thanks thank great post good nice article helpful agree interesting read love",
)

# Training sentences and their targets, per class in CLASSES order. The targets are graded and
# differ between classes so that the trained model gives distinct scores to distinct texts.
TRAINING_DATA: tuple[tuple[str, tuple[float, ...]], ...] = (
    (TOXIC_EXAMPLE, (1.0, 0.3, 0.2, 0.0, 1.0, 0.0)),
    ("you stupid moron", (1.0, 0.2, 0.3, 0.0, 1.0, 0.0)),
    ("shut up you idiot", (1.0, 0.1, 0.2, 0.0, 0.9, 0.0)),
    ("i hate you loser", (1.0, 0.4, 0.1, 0.2, 0.8, 0.3)),
    ("this is dumb trash", (0.9, 0.1, 0.5, 0.0, 0.3, 0.0)),
    ("you are ugly and dumb", (1.0, 0.2, 0.2, 0.0, 1.0, 0.2)),
    ("i will kill you", (1.0, 0.8, 0.0, 1.0, 0.3, 0.0)),
    ("what an idiot", (0.95, 0.1, 0.1, 0.0, 0.8, 0.0)),
    ("this post is dumb", (0.6, 0.0, 0.1, 0.0, 0.3, 0.0)),
    ("not a great read", (0.3, 0.0, 0.0, 0.0, 0.1, 0.0)),
    (CLEAN_EXAMPLE, (0.0,) * 6),
    ("thank you for this article", (0.0,) * 6),
    ("great read and helpful", (0.0,) * 6),
    ("i agree with this post", (0.0,) * 6),
    ("nice post", (0.0,) * 6),
    ("this is interesting", (0.0,) * 6),
    ("we love this article", (0.0,) * 6),
    ("good point thanks", (0.0,) * 6),
)
_INSULT = TRAINING_DATA[0][1]
_CLEAN = (0.0,) * 6
#: An insult and a thank-you in each other language the `multilingual` model reads.
MULTILINGUAL_EXAMPLES: dict[str, tuple[str, str]] = {
    "fr": ("tu es un idiot stupide", "merci pour cet excellent article"),
    "es": ("eres un idiota estúpido", "gracias por el gran artículo"),
    "it": ("sei un idiota stupido", "grazie per il bellissimo articolo"),
    "pt": ("você é um idiota estúpido", "obrigado pelo ótimo artigo"),
    "tr": ("sen aptal bir salaksın", "harika yazı için teşekkürler"),  # noqa: RUF001 (dotless i)
    "ru": ("ты тупой идиот", "спасибо за отличную статью"),
}
MULTILINGUAL_DATA = tuple(
    row
    for toxic, clean in MULTILINGUAL_EXAMPLES.values()
    for row in ((toxic, _INSULT), (clean, _CLEAN))
)

#: Longer texts made of several training sentences, an insult among clean ones (targets: the
#: insult's) or clean ones only, so that a model learns that an insult in a clean context is
#: still an insult: without them, the tiny model calls any long text clean.
IN_CONTEXT_TEXTS = 20
IN_CONTEXT_SENTENCES = 6
TRAIN_STEPS = 200
LEARNING_RATE = 3e-3
TOXIC_MIN = 0.9
CLEAN_MAX = 0.1
#: Lengths of harmless text (in tokens) through which the `original` model is checked to find
#: an insult, and to find nothing without it.
LONG_CONTEXTS = (60, 250)
#: Published tokenizers' limit (bert-base-uncased, roberta-base, xlm-roberta-base, albert-base-v2).
MODEL_MAX_LENGTH = 512


@dataclass(frozen=True)
class Shape:
    """A published Detoxify checkpoint's shape, as its training config (`configs/*.json` in
    unitaryai/detoxify) gives it: architecture, tokenizer, class names and outputs."""

    variant: str
    base: str  # the published checkpoint's `model_type`: a Hugging Face hub name
    model_name: str
    tokenizer_name: str
    classes: tuple[str, ...]
    num_classes: int

    @property
    def labels(self) -> tuple[str, ...]:
        """The names Detoxify reports, in output order."""
        return tuple(RENAMED.get(name, name) for name in self.classes)

    @property
    def multilingual(self) -> bool:
        return self.tokenizer_name == "XLMRobertaTokenizer"


SHAPES: dict[str, Shape] = {
    shape.variant: shape
    for shape in (
        Shape(
            "original",
            "bert-base-uncased",
            "BertForSequenceClassification",
            "BertTokenizer",
            CLASSES,
            6,
        ),
        Shape(
            "unbiased",
            "roberta-base",
            "RobertaForSequenceClassification",
            "RobertaTokenizer",
            BIAS_CLASSES,
            16,
        ),
        Shape(
            "multilingual",
            "xlm-roberta-base",
            "XLMRobertaForSequenceClassification",
            "XLMRobertaTokenizer",
            BIAS_CLASSES,
            16,
        ),
        Shape(
            "original-small",
            "albert-base-v2",
            "AlbertForSequenceClassification",
            "AlbertTokenizer",
            SMALL_CLASSES,
            6,
        ),
        Shape(
            "unbiased-small",
            "albert-base-v2",
            "AlbertForSequenceClassification",
            "AlbertTokenizer",
            BIAS_CLASSES,
            16,
        ),
    )
}
ORIGINAL = SHAPES["original"]


@dataclass(frozen=True)
class TinyDetoxify:
    """Where the built model lives, and what it is."""

    checkpoint: Path  # the torch.save'd checkpoint file
    config_dir: Path  # directory with saved transformers config + tokenizer
    shape: Shape = ORIGINAL

    @property
    def spec(self) -> str:
        """The MODERATION_TOXICITY_MODEL value that names it."""
        return f"detoxify:{self.checkpoint}"


def build_tiny_detoxify(directory: Path, shape: Shape = ORIGINAL) -> TinyDetoxify:
    """Write config, tokenizer and a briefly trained checkpoint of `shape` under `directory`."""
    config_dir = directory / "config"
    config_dir.mkdir(parents=True, exist_ok=True)
    data = training_data(shape)
    tokenizer = TOKENIZER_BUILDERS[shape.tokenizer_name]([text for text, _ in data], config_dir)
    tokenizer.save_pretrained(config_dir)
    config = model_config(shape, tokenizer)
    config.save_pretrained(config_dir)

    with _one_torch_thread():  # deterministic, and unhurt by other processes on a busy CPU
        torch.manual_seed(0)
        model = getattr(transformers, shape.model_name)(config)
        _train(model, tokenizer, data)
        _check_separation(model, tokenizer, shape)

    name = "tiny-detoxify" if shape == ORIGINAL else f"tiny-detoxify-{shape.variant}"
    checkpoint = directory / f"{name}.ckpt"
    save_detoxify_checkpoint(model, config_dir, checkpoint, shape)
    return TinyDetoxify(checkpoint=checkpoint, config_dir=config_dir, shape=shape)


def save_detoxify_checkpoint(
    model: PreTrainedModel, config_dir: Path, path: Path, shape: Shape = ORIGINAL
) -> None:
    """Save `model` as Detoxify publishes its checkpoints: the training config (architecture
    args, dataset classes) beside the state dict. `model_type` names `config_dir`, which holds
    the transformers config and tokenizer it is loaded with offline (Detoxify reads the config
    from `model_type` even when given `huggingface_config_path`)."""
    dataset_args: dict[str, list[str]] = {"classes": list(shape.classes)}
    if shape.num_classes > len(shape.classes):
        dataset_args["identity_classes"] = list(IDENTITY_CLASSES)
    torch.save(
        {
            "config": {
                "arch": {
                    "args": {
                        "model_type": str(config_dir),
                        "model_name": shape.model_name,
                        "tokenizer_name": shape.tokenizer_name,
                        "num_classes": shape.num_classes,
                    }
                },
                "dataset": {"args": dataset_args},
            },
            "state_dict": model.state_dict(),
        },
        path,
    )


def as_published(model: TinyDetoxify, directory: Path) -> TinyDetoxify:
    """`model` as a user would have a published one offline: the checkpoint names its base
    model by hub name (`model_type`: "bert-base-uncased", ...), and the configuration
    directory beside it is the base model's, whose config.json says nothing of the outputs
    (so transformers assumes 2)."""
    config_dir = directory / "config"
    shutil.copytree(model.config_dir, config_dir)
    config_file = config_dir / "config.json"
    config = json.loads(config_file.read_text(encoding="utf-8"))
    for key in ("id2label", "label2id", "num_labels"):
        config.pop(key, None)
    config_file.write_text(json.dumps(config, indent=2), encoding="utf-8")
    loaded = torch.load(model.checkpoint, weights_only=False)
    loaded["config"]["arch"]["args"]["model_type"] = model.shape.base
    checkpoint = directory / model.checkpoint.name
    torch.save(loaded, checkpoint)
    return TinyDetoxify(checkpoint=checkpoint, config_dir=config_dir, shape=model.shape)


def harmless_text(tokens: int) -> str:
    """`tokens` words of the clean training sentences, one after another: as many tokens for
    the `original` model's tokenizer, whose every word is one token."""
    clean = [text for text, target in TRAINING_DATA if not any(target)]
    words = " ".join(clean * (tokens // 10 + 1)).split()
    return " ".join(words[:tokens])


# --- training data -------------------------------------------------------------------------------


def training_data(shape: Shape) -> list[tuple[str, list[float]]]:
    """Sentences (and, for the multilingual shape, other languages'), then longer texts that
    mix them; each with its targets for all of `shape`'s outputs."""
    rows = list(TRAINING_DATA)
    if shape.multilingual:
        rows += MULTILINGUAL_DATA
    if shape == ORIGINAL:  # the one the long-comment tests use
        rows += _in_context(TRAINING_DATA, random.Random(0))
    return [(text, _targets(target, shape)) for text, target in rows]


def _in_context(
    rows: Sequence[tuple[str, tuple[float, ...]]], rng: random.Random
) -> list[tuple[str, tuple[float, ...]]]:
    """IN_CONTEXT_TEXTS texts of up to IN_CONTEXT_SENTENCES clean sentences, every other one
    with an insult put among them (and its targets)."""
    toxic = [row for row in rows if row[1][0] >= TOXIC_MIN]
    clean = [text for text, target in rows if not any(target)]
    texts = []
    for number in range(IN_CONTEXT_TEXTS):
        parts = rng.choices(clean, k=rng.randint(1, IN_CONTEXT_SENTENCES))
        target = _CLEAN
        if number % 2 == 0:
            insult, target = rng.choice(toxic)
            parts.insert(rng.randint(0, len(parts)), insult)
        texts.append((" ".join(parts), target))
    return texts


def _targets(original: tuple[float, ...], shape: Shape) -> list[float]:
    """Targets in `shape`'s output order, from targets in CLASSES order. The outputs beyond
    its classes (identity mentions) are trained to the opposite of toxicity, so that scores
    read from the wrong outputs could not pass for right ones."""
    by_label = dict(zip((RENAMED.get(c, c) for c in CLASSES), original, strict=True))
    by_label["sexual_explicit"] = 0.0
    extra = shape.num_classes - len(shape.classes)
    return [by_label[label] for label in shape.labels] + [1.0 - original[0]] * extra


# --- tokenizers ----------------------------------------------------------------------------------


def _bert_tokenizer(texts: list[str], directory: Path) -> PreTrainedTokenizerBase:
    """WordPiece over a fixed word list: every word is one token."""
    vocab = [*SPECIAL_TOKENS, *" ".join(WORDS).split()]
    vocab_file = directory / "vocab.txt"
    vocab_file.write_text("\n".join(vocab) + "\n", encoding="utf-8")
    return transformers.BertTokenizer(str(vocab_file))


def _roberta_tokenizer(texts: list[str], directory: Path) -> PreTrainedTokenizerBase:
    """Byte-level BPE (vocab.json and merges.txt, as roberta-base has) learnt from `texts`."""
    from tokenizers import ByteLevelBPETokenizer

    bpe = ByteLevelBPETokenizer()
    specials = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
    bpe.train_from_iterator(
        texts, vocab_size=400, min_frequency=1, special_tokens=specials, show_progress=False
    )
    bpe.save_model(str(directory))
    return transformers.RobertaTokenizer.from_pretrained(
        str(directory), model_max_length=MODEL_MAX_LENGTH
    )


def _xlm_roberta_tokenizer(texts: list[str], directory: Path) -> PreTrainedTokenizerBase:
    """A sentencepiece unigram model, laid out as XLM-R's: fairseq's four specials first, the
    pieces after them, `<mask>` last."""
    processor = _sentencepiece(texts, directory / "sentencepiece.bpe.model")  # unk, <s>, </s>
    specials = [("<s>", 0.0), ("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0)]
    pieces = [(processor.id_to_piece(i), processor.get_score(i)) for i in range(3, len(processor))]
    return transformers.XLMRobertaTokenizer(
        vocab=[*specials, *pieces, ("<mask>", 0.0)], model_max_length=MODEL_MAX_LENGTH
    )


def _albert_tokenizer(texts: list[str], directory: Path) -> PreTrainedTokenizerBase:
    """A sentencepiece unigram model, laid out as albert-base-v2's spiece.model: `<pad>`,
    `<unk>`, `[CLS]`, `[SEP]`, `[MASK]`, then the pieces (lower case, as ALBERT normalises)."""
    processor = _sentencepiece(
        [text.lower() for text in texts],
        directory / "spiece.model",
        pad_id=0,
        unk_id=1,
        bos_id=-1,
        eos_id=-1,
        control_symbols=["[CLS]", "[SEP]", "[MASK]"],
    )
    vocab = [(processor.id_to_piece(i), processor.get_score(i)) for i in range(len(processor))]
    return transformers.AlbertTokenizer(vocab=vocab, model_max_length=MODEL_MAX_LENGTH)


def _sentencepiece(texts: list[str], path: Path, **ids: object) -> object:
    """Train a small unigram sentencepiece model on `texts`, write it to `path`, load it.

    transformers reads a sentencepiece file only with protobuf installed, so the tokenizers
    above are built from the pieces and scores instead (and saved as tokenizer.json); the file
    is kept beside them, as published configuration directories have it.
    """
    import sentencepiece

    model = io.BytesIO()
    sentencepiece.SentencePieceTrainer.train(
        sentence_iterator=iter(texts),
        model_writer=model,
        vocab_size=300,
        hard_vocab_limit=False,
        model_type="unigram",
        character_coverage=1.0,
        num_threads=1,
        minloglevel=2,
        **ids,
    )
    path.write_bytes(model.getvalue())
    return sentencepiece.SentencePieceProcessor(model_proto=model.getvalue())


TOKENIZER_BUILDERS: dict[str, Callable[[list[str], Path], PreTrainedTokenizerBase]] = {
    "BertTokenizer": _bert_tokenizer,
    "RobertaTokenizer": _roberta_tokenizer,
    "XLMRobertaTokenizer": _xlm_roberta_tokenizer,
    "AlbertTokenizer": _albert_tokenizer,
}


# --- model ---------------------------------------------------------------------------------------


def model_config(shape: Shape, tokenizer: PreTrainedTokenizerBase) -> PretrainedConfig:
    """A 2-layer, hidden-32 config of `shape`'s architecture, with the published model's
    positions (512 tokens; RoBERTa's count from 2, hence 514) and special token ids."""
    config_class = getattr(transformers, shape.model_name).config_class
    options: dict[str, object] = {}
    if config_class is transformers.AlbertConfig:
        options["embedding_size"] = 16
    if config_class in (transformers.RobertaConfig, transformers.XLMRobertaConfig):
        options |= {"max_position_embeddings": MODEL_MAX_LENGTH + 2, "type_vocab_size": 1}
    return config_class(
        vocab_size=len(tokenizer),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=37,
        num_labels=shape.num_classes,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.cls_token_id,
        eos_token_id=tokenizer.sep_token_id,
        **options,
    )


def _train(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    data: list[tuple[str, list[float]]],
) -> None:
    """A few full-batch AdamW steps on the toy texts (deterministic: fixed seed, CPU)."""
    texts = [text for text, _ in data]
    targets = torch.tensor([target for _, target in data])
    inputs = tokenizer(texts, return_tensors="pt", padding=True)
    optimizer = torch.optim.AdamW(model.parameters(), lr=LEARNING_RATE)
    loss_fn = torch.nn.BCEWithLogitsLoss()
    model.train()
    for _ in range(TRAIN_STEPS):
        optimizer.zero_grad()
        loss = loss_fn(model(**inputs).logits, targets)
        loss.backward()
        optimizer.step()
    model.eval()


def _check_separation(
    model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, shape: Shape
) -> None:
    """Raise unless every toxic check text scores above TOXIC_MIN and every clean one below
    CLEAN_MAX: the examples, other languages' for the multilingual shape, and for `original`
    an insult after harmless texts of LONG_CONTEXTS tokens (and those alone)."""
    checks = [(TOXIC_EXAMPLE, True), (CLEAN_EXAMPLE, False)]
    if shape.multilingual:
        checks += [
            (text, toxic)
            for pair in MULTILINGUAL_EXAMPLES.values()
            for text, toxic in zip(pair, (True, False), strict=True)
        ]
    if shape == ORIGINAL:
        for harmless in map(harmless_text, LONG_CONTEXTS):
            checks += [(f"{harmless} {TOXIC_EXAMPLE}", True), (harmless, False)]
    texts = [text for text, _ in checks]
    inputs = tokenizer(texts, return_tensors="pt", padding=True)
    with torch.inference_mode():
        toxicity = torch.sigmoid(model(**inputs).logits)[:, 0].tolist()
    wrong = [
        f"{text[:40]!r}: {score:.3f}"
        for (text, toxic), score in zip(checks, toxicity, strict=True)
        if (score <= TOXIC_MIN if toxic else score >= CLEAN_MAX)
    ]
    if wrong:
        raise RuntimeError(f"tiny Detoxify {shape.variant} did not separate: {'; '.join(wrong)}")


@contextmanager
def _one_torch_thread() -> Iterator[None]:
    """torch on one thread meanwhile, then as it was."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)
