"""Config of the `text` dataset: a character- or word-level corpus from text files on this machine.

    python -m MLSystem.execute_train dataset=text model=transformer                 # the Python stdlib's own sources
    python -m MLSystem.execute_train dataset=text model=transformer path=notes/ pattern='*.md' level=word
"""

from dataclasses import dataclass

from MLSystem.base import ConfigBase, param


@dataclass
class TextConfig(ConfigBase):
    path: str = param("", "A text file, a folder (files matching `pattern`, recursively) or a glob; "
                          "'' = a few modules of the Python standard library (present wherever Python is)")
    pattern: str = param("*.txt", "File names read from a folder `path`")
    level: str = param("char", "Tokens: characters, or whitespace-separated words with <eos> per line",
                       choices=("char", "word"))
    block_size: int = param(64, "Tokens per training sequence (non-overlapping blocks)")
    val_fraction: float = param(0.1, "The last part of the corpus held out for validation")
    max_chars: int = param(0, "Read at most this many characters of the corpus (0 = all)")

    def __post_init__(self) -> None:
        problems = []
        if self.block_size < 2:
            problems.append(f"block_size: must be >= 2, got {self.block_size}")
        if not 0.0 < self.val_fraction < 0.5:
            problems.append(f"val_fraction: must be in (0, 0.5), got {self.val_fraction}")
        if self.max_chars < 0:
            problems.append(f"max_chars: must be >= 0, got {self.max_chars}")
        if problems:
            raise ValueError("; ".join(problems))
