"""The embedded trainer behind the local provider (and the emulators' tuned models).

A linear model over hashed word (1-2) and character (3-5) n-grams, trained with mini-batch SGD on softmax
cross-entropy. It honours epoch_count, batch_size and learning_rate, and is deterministic for a seed.

When outputs are a small label set it classifies. When they are not (free text, one output per input),
a linear classifier cannot produce new text, so it answers honestly with the output of the most similar
training input (cosine nearest neighbour over the same features) and says so in its `mode`.
"""

from __future__ import annotations

import itertools
import json
import re
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

DIMENSIONS = 1 << 18
MAX_LABELS = 50
_WORD = re.compile(r"\w+", re.UNICODE)


def features(text: str) -> tuple[np.ndarray, np.ndarray]:
    """Hashed n-gram indices and their L2-normalised log-count weights. Never empty (a bias bucket)."""
    words = _WORD.findall(text.lower())
    grams = [f"w:{w}" for w in words]
    grams += [f"b:{a} {b}" for a, b in itertools.pairwise(words)]
    for word in words:
        padded = f" {word} "
        for n in (3, 4, 5):
            grams += [f"c:{padded[i:i + n]}" for i in range(max(1, len(padded) - n + 1))]
    grams.append("bias")
    buckets = np.fromiter((zlib.crc32(g.encode("utf-8")) % DIMENSIONS for g in grams), dtype=np.int64)
    indices, counts = np.unique(buckets, return_counts=True)
    weights = np.log1p(counts).astype(np.float32)
    weights /= np.linalg.norm(weights)
    return indices, weights


@dataclass
class SparseRows:
    """CSR rows of hashed features."""

    indices: np.ndarray
    weights: np.ndarray
    offsets: np.ndarray  # row i is [offsets[i], offsets[i+1])

    @classmethod
    def of(cls, texts: Iterable[str]) -> SparseRows:
        rows = [features(t) for t in texts]
        offsets = np.zeros(len(rows) + 1, dtype=np.int64)
        offsets[1:] = np.cumsum([len(i) for i, _ in rows])
        if not rows:
            return cls(np.zeros(0, np.int64), np.zeros(0, np.float32), offsets)
        return cls(np.concatenate([i for i, _ in rows]), np.concatenate([w for _, w in rows]), offsets)

    def take(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(indices, weights, row position in `rows`) of the given rows, concatenated."""
        starts, ends = self.offsets[rows], self.offsets[rows + 1]
        lengths = ends - starts
        positions = np.repeat(np.arange(len(rows)), lengths)
        flat = np.concatenate([np.arange(s, e) for s, e in zip(starts, ends)]) if len(rows) else np.zeros(0, int)
        return self.indices[flat], self.weights[flat], positions


class TunedModel:
    def __init__(self, mode: str, labels: list[str], weights: np.ndarray | None = None,
                 bias: np.ndarray | None = None, memory: SparseRows | None = None):
        self.mode = mode  # "classifier" or "nearest-neighbour"
        self.labels = labels
        self.weights = weights
        self.bias = bias
        self.memory = memory  # training inputs, nearest-neighbour mode only

    def predict(self, text: str) -> str:
        indices, weights = features(text)
        if self.mode == "classifier":
            scores = weights @ self.weights[indices] + self.bias
            return self.labels[int(np.argmax(scores))]
        query = np.zeros(DIMENSIONS, dtype=np.float32)
        query[indices] = weights
        products = query[self.memory.indices] * self.memory.weights
        similarity = np.add.reduceat(products, self.memory.offsets[:-1]) if products.size else np.zeros(1)
        return self.labels[int(np.argmax(similarity))]

    def save(self, path: Path) -> None:
        arrays = {"labels": np.array(json.dumps(self.labels))}
        if self.mode == "classifier":
            arrays |= {"weights": self.weights, "bias": self.bias}
        else:
            arrays |= {"indices": self.memory.indices, "values": self.memory.weights, "offsets": self.memory.offsets}
        with open(path, "wb") as handle:
            np.savez_compressed(handle, mode=np.array(self.mode), **arrays)

    @classmethod
    def load(cls, path: Path) -> TunedModel:
        with np.load(path) as data:
            mode, labels = str(data["mode"]), json.loads(str(data["labels"]))
            if mode == "classifier":
                return cls(mode, labels, weights=data["weights"], bias=data["bias"])
            return cls(mode, labels, memory=SparseRows(data["indices"], data["values"], data["offsets"]))


def train(
    examples: list[tuple[str, str]],
    epoch_count: int,
    batch_size: int,
    learning_rate: float,
    seed: int,
    on_epoch: Callable[[int, float], None] | None = None,
) -> TunedModel:
    """Mini-batch SGD; on_epoch(epoch, mean_loss) is called after each epoch."""
    if not examples:
        raise ValueError("no training examples")
    inputs = [i for i, _ in examples]
    outputs = [o for _, o in examples]
    labels = sorted(set(outputs))
    rows = SparseRows.of(inputs)
    if len(labels) > MAX_LABELS or len(labels) > len(examples) / 2:
        if on_epoch:
            on_epoch(epoch_count, 0.0)
        return TunedModel("nearest-neighbour", outputs, memory=rows)
    label_of = {label: k for k, label in enumerate(labels)}
    targets = np.array([label_of[o] for o in outputs])
    weights = np.zeros((DIMENSIONS, len(labels)), dtype=np.float32)
    bias = np.zeros(len(labels), dtype=np.float32)
    rng = np.random.default_rng(seed)
    for epoch in range(1, epoch_count + 1):
        order = rng.permutation(len(examples))
        losses = []
        for start in range(0, len(order), batch_size):
            batch = order[start:start + batch_size]
            indices, values, positions = rows.take(batch)
            logits = np.zeros((len(batch), len(labels)), dtype=np.float32)
            np.add.at(logits, positions, weights[indices] * values[:, None])
            logits += bias
            logits -= logits.max(axis=1, keepdims=True)
            probabilities = np.exp(logits)
            probabilities /= probabilities.sum(axis=1, keepdims=True)
            truth = targets[batch]
            losses.append(-np.log(probabilities[np.arange(len(batch)), truth] + 1e-12).mean())
            gradient = probabilities
            gradient[np.arange(len(batch)), truth] -= 1.0
            gradient /= len(batch)
            np.add.at(weights, indices, -learning_rate * values[:, None] * gradient[positions])
            bias -= learning_rate * gradient.sum(axis=0)
        if on_epoch:
            on_epoch(epoch, float(np.mean(losses)))
    return TunedModel("classifier", labels, weights=weights, bias=bias)
