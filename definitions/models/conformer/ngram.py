"""A character or word n-gram language model written as an ARPA file (interpolated Kneser-Ney).

KenLM (inside ``flashlight-text``, which torchaudio's CTC decoder drives) reads ARPA but its
estimator (``lmplz``) is a separate C++ build, so the few counts a character LM needs are taken
here. Tokens are the model's characters with the space written ``|`` (ARPA separates words by
spaces), or whole words (``unit="word"``); ``<s>`` / ``</s>`` mark sentence ends.

Interpolated Kneser-Ney as SRILM stores it: a seen n-gram's probability is already the
interpolated one, and the back-off weight of a context is the mass its discount freed, so an
unseen continuation gets ``bow(h) * p(w | shorter h)``. Lower orders count distinct left
contexts (continuation counts), except n-grams that start with ``<s>`` (no left context).
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from pathlib import Path
from typing import Iterable

SPACE = "|"
BOS, EOS, UNK = "<s>", "</s>", "<unk>"


def tokens_of(sentence: str) -> list[str]:
    """``"hi there"`` -> ``["h", "i", "|", "t", ...]`` (single spaces, no edges)."""
    return [SPACE if c == " " else c for c in " ".join(sentence.split())]


def write_arpa(sentences: Iterable[str], order: int, path: Path, vocab: Iterable[str], unit: str = "char") -> Path:
    """Estimate an ``order``-gram LM of characters or words (``unit``) on ``sentences``; write it to ``path``."""
    if order < 1:
        raise ValueError(f"lm_order: must be >= 1, got {order}")
    if unit not in ("char", "word"):
        raise ValueError(f"unit: must be char or word, got {unit!r}")
    tokenize = tokens_of if unit == "char" else str.split
    raw: list[Counter] = [Counter() for _ in range(order + 1)]  # raw[k][ngram] for k = 1..order
    for sentence in sentences:
        toks = [BOS, *tokenize(sentence), EOS]
        for k in range(1, order + 1):
            for i in range(len(toks) - k + 1):
                raw[k][tuple(toks[i:i + k])] += 1
    # Kneser-Ney counts: the highest order and <s>-initial n-grams keep raw counts, the others
    # count the distinct tokens seen before them.
    counts: list[Counter] = [Counter() for _ in range(order + 1)]
    counts[order] = raw[order]
    for k in range(1, order):
        for gram in raw[k + 1]:
            counts[k][gram[1:]] += 1
        for gram, c in raw[k].items():
            if gram[0] == BOS:
                counts[k][gram] = c
    vocab = sorted({*vocab, *(g[0] for g in raw[1])} - {BOS, EOS, UNK})
    discount = [0.0] + [_discount(counts[k]) for k in range(1, order + 1)]

    context_total: list[dict] = [defaultdict(int) for _ in range(order + 1)]
    context_types: list[dict] = [defaultdict(int) for _ in range(order + 1)]
    for k in range(1, order + 1):
        for gram, c in counts[k].items():
            context_total[k][gram[:-1]] += c
            context_types[k][gram[:-1]] += 1

    prob: list[dict] = [dict() for _ in range(order + 1)]
    total1, d1 = context_total[1][()], discount[1]
    uniform = 1.0 / (len(vocab) + 2)  # every token, </s> and <unk>
    freed1 = d1 * context_types[1][()] / total1
    for tok in [*vocab, EOS, UNK]:
        prob[1][(tok,)] = max(counts[1].get((tok,), 0) - d1, 0) / total1 + freed1 * uniform
    for k in range(2, order + 1):
        d = discount[k]
        for gram, c in counts[k].items():
            h = gram[:-1]
            lower = _lookup(prob, gram[1:])
            prob[k][gram] = (max(c - d, 0) / context_total[k][h]
                             + d * context_types[k][h] / context_total[k][h] * lower)
    backoff = {h: discount[len(h) + 1] * context_types[len(h) + 1][h] / context_total[len(h) + 1][h]
               for k in range(1, order) for h in context_total[k + 1]}

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write("\\data\\\n")
        sizes = [len(prob[1]) + 1] + [len(prob[k]) for k in range(2, order + 1)]
        for k, n in enumerate(sizes, start=1):
            fh.write(f"ngram {k}={n}\n")
        for k in range(1, order + 1):
            fh.write(f"\n\\{k}-grams:\n")
            if k == 1:
                fh.write(f"-99\t{BOS}\t{_log10(backoff.get((BOS,), 1.0)):.6f}\n")
            for gram, p in sorted(prob[k].items()):
                line = f"{_log10(p):.6f}\t{' '.join(gram)}"
                if k < order and gram in backoff:
                    line += f"\t{_log10(backoff[gram]):.6f}"
                fh.write(line + "\n")
        fh.write("\n\\end\\\n")
    tmp.replace(path)
    return path


def _lookup(prob: list[dict], gram: tuple[str, ...]) -> float:
    """Interpolated probability of ``gram`` from the already computed lower orders."""
    p = prob[len(gram)].get(gram)
    if p is not None:
        return p
    raise KeyError(gram)  # Kneser-Ney counts make every suffix of a seen n-gram seen


def _discount(counts: Counter) -> float:
    """Ney's absolute discount ``n1 / (n1 + 2 n2)`` from counts of counts, kept in [0.1, 0.9]."""
    n1 = sum(1 for c in counts.values() if c == 1)
    n2 = sum(1 for c in counts.values() if c == 2)
    return min(0.9, max(0.1, n1 / (n1 + 2 * n2))) if n1 + n2 else 0.5


def _log10(p: float) -> float:
    return math.log10(p) if p > 0 else -99.0
