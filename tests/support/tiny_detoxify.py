"""A tiny, offline Detoxify checkpoint: a 2-layer BERT trained for a moment on a toy vocabulary.

Detoxify normally downloads a ~400 MB checkpoint plus a Hugging Face config. Tests build this one
instead: it loads through `Detoxify(checkpoint=..., huggingface_config_path=...)` with no network,
and it is trained just enough that `TOXIC_EXAMPLE` scores high and `CLEAN_EXAMPLE` scores low.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import BertConfig, BertForSequenceClassification, BertTokenizer

CLASSES = ("toxic", "severe_toxic", "obscene", "threat", "insult", "identity_hate")
#: The labels Detoxify reports for CLASSES (it renames three of them).
LABELS = frozenset(
    {"toxicity", "severe_toxicity", "obscene", "threat", "insult", "identity_attack"}
)
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

TRAIN_STEPS = 200
LEARNING_RATE = 3e-3
TOXIC_MIN = 0.9
CLEAN_MAX = 0.1


@dataclass(frozen=True)
class TinyDetoxify:
    """Where the built model lives."""

    checkpoint: Path  # the torch.save'd checkpoint file
    config_dir: Path  # directory with saved transformers config + tokenizer


def build_tiny_detoxify(directory: Path) -> TinyDetoxify:
    """Write config, tokenizer and a briefly trained checkpoint under `directory`."""
    config_dir = directory / "config"
    config_dir.mkdir(parents=True, exist_ok=True)
    vocab = [*SPECIAL_TOKENS, *" ".join(WORDS).split()]
    vocab_file = config_dir / "vocab.txt"
    vocab_file.write_text("\n".join(vocab) + "\n", encoding="utf-8")
    tokenizer = BertTokenizer(str(vocab_file))
    tokenizer.save_pretrained(config_dir)
    config = BertConfig(
        vocab_size=len(vocab),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=37,
        num_labels=len(CLASSES),
    )
    config.save_pretrained(config_dir)

    torch.manual_seed(0)
    model = BertForSequenceClassification(config)
    _train(model, tokenizer)
    _check_separation(model, tokenizer)

    checkpoint = directory / "tiny-detoxify.ckpt"
    save_detoxify_checkpoint(model, config_dir, checkpoint)
    return TinyDetoxify(checkpoint=checkpoint, config_dir=config_dir)


def _train(model: BertForSequenceClassification, tokenizer: BertTokenizer) -> None:
    """A few full-batch AdamW steps on the toy sentences (deterministic: fixed seed, CPU)."""
    texts = [text for text, _ in TRAINING_DATA]
    targets = torch.tensor([target for _, target in TRAINING_DATA])
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


def _check_separation(model: BertForSequenceClassification, tokenizer: BertTokenizer) -> None:
    """Raise unless the toxic example scores above TOXIC_MIN and the clean one below CLEAN_MAX."""
    inputs = tokenizer([TOXIC_EXAMPLE, CLEAN_EXAMPLE], return_tensors="pt", padding=True)
    with torch.inference_mode():
        toxic, clean = torch.sigmoid(model(**inputs).logits)[:, 0].tolist()
    if toxic <= TOXIC_MIN or clean >= CLEAN_MAX:
        raise RuntimeError(
            f"tiny Detoxify did not separate its examples: toxic={toxic:.3f}, clean={clean:.3f}"
        )


def save_detoxify_checkpoint(
    model: BertForSequenceClassification, config_dir: Path, path: Path
) -> None:
    """Save `model` as Detoxify's own `Detoxify(checkpoint=...)` expects a checkpoint: its
    training config (classes, architecture) beside the state dict; `config_dir` holds the
    transformers config and tokenizer it is loaded with offline."""
    torch.save(
        {
            "config": {
                "arch": {
                    "args": {
                        "model_type": str(config_dir),
                        "model_name": "BertForSequenceClassification",
                        "tokenizer_name": "BertTokenizer",
                        "num_classes": len(CLASSES),
                    }
                },
                "dataset": {"args": {"classes": list(CLASSES)}},
            },
            "state_dict": model.state_dict(),
        },
        path,
    )
