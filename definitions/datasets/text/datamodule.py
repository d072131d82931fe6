"""The `text` data module: token blocks ``(inputs, targets)`` from local text files, no download.

The corpus is the files of ``path`` in sorted order, joined by newlines; its last
``val_fraction`` is validation. The vocabulary is built from the whole corpus (sorted, so it is
the same on every run) and offered to adapters as :attr:`TextDataModule.vocab`.
"""

from __future__ import annotations

import glob
import sysconfig
from pathlib import Path

import torch
from torch.utils.data import Dataset

from MLSystem.base import BaseDataModule

# The default corpus: modules every CPython installation ships (about 200 kB of English and code).
STDLIB_FILES = ("argparse.py", "difflib.py", "textwrap.py", "shlex.py")
EOS = "<eos>"


def corpus_files(path: str, pattern: str) -> list[Path]:
    """The files ``path`` names (a file, a folder searched for ``pattern``, or a glob)."""
    if not path:
        stdlib = Path(sysconfig.get_paths()["stdlib"])
        files = [stdlib / name for name in STDLIB_FILES if (stdlib / name).is_file()]
    else:
        p = Path(path).expanduser()
        if p.is_file():
            files = [p]
        elif p.is_dir():
            files = sorted(f for f in p.rglob(pattern) if f.is_file())
        else:
            files = sorted(Path(f) for f in glob.glob(str(p), recursive=True) if Path(f).is_file())
    if not files:
        raise ValueError(f"path: no text files found for {path or 'the standard library'!r}"
                         + (f" (pattern {pattern!r})" if path and Path(path).is_dir() else ""))
    return files


def tokenize(text: str, level: str) -> list[str]:
    if level == "char":
        return list(text)
    return [w for line in text.splitlines() for w in (*line.split(), EOS)]


class TokenBlocks(Dataset):
    """Non-overlapping blocks: item ``i`` is ``ids[i*B : i*B+B]`` and the same shifted by one."""

    def __init__(self, ids: torch.Tensor, block_size: int):
        self.ids, self.block_size = ids, block_size

    def __len__(self) -> int:
        return max(0, (len(self.ids) - 1) // self.block_size)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        start = i * self.block_size
        return self.ids[start:start + self.block_size], self.ids[start + 1:start + self.block_size + 1]


class TextDataModule(BaseDataModule):
    def load_tokens(self) -> list[str]:
        """The corpus as tokens (read once; adapters may call it before ``setup``)."""
        if not hasattr(self, "_tokens"):
            p = self.params
            texts = [f.read_text(encoding="utf-8", errors="replace") for f in corpus_files(p["path"], p["pattern"])]
            text = "\n".join(texts)
            if p["max_chars"]:
                text = text[:int(p["max_chars"])]
            self._tokens = tokenize(text, p["level"])
        return self._tokens

    @property
    def vocab(self) -> list[str]:
        """Every token of the corpus, sorted: index = token id."""
        if not hasattr(self, "_vocab"):
            self._vocab = sorted(set(self.load_tokens()))
        return self._vocab

    def encode(self, tokens: list[str]) -> torch.Tensor:
        index = {t: i for i, t in enumerate(self.vocab)}
        return torch.tensor([index[t] for t in tokens], dtype=torch.long)

    def decode(self, ids) -> str:
        sep = "" if self.params["level"] == "char" else " "
        return sep.join(self.vocab[int(i)] for i in ids)

    def setup(self, stage: str | None = None) -> None:
        if hasattr(self, "train_set"):
            return
        p = self.params
        ids = self.encode(self.load_tokens())
        n_val = max(int(len(ids) * float(p["val_fraction"])), int(p["block_size"]) + 1)
        if len(ids) - n_val < int(p["block_size"]) + 1:
            raise ValueError(f"path: the corpus has {len(ids)} tokens, too few for block_size={p['block_size']}")
        self.train_set = self.limit(TokenBlocks(ids[:-n_val], int(p["block_size"])))
        self.val_set = TokenBlocks(ids[-n_val:], int(p["block_size"]))

    def train_dataloader(self):
        return self.train_loader(self.train_set)

    def val_dataloader(self):
        return self.eval_loader(self.val_set)
