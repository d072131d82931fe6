"""CTC decoding: greedy, or prefix beam search with a character or a word n-gram LM.

The beam search is torchaudio's ``ctc_decoder`` (flashlight-text's decoders with their built-in
KenLM), scoring with an n-gram LM of the training text (:mod:`ngram`):

* ``unit="char"``: lexicon-free, each character scored by a character n-gram. The vocabulary stays
  open: a name never seen in training can still be spelled, while the LM prefers the spellings
  the training text uses.
* ``unit="word"``: lexicon-constrained, each word scored by a word n-gram; the lexicon is every
  word of the LM text spelled in characters. Stronger where the text is known (spelling of known
  words is fixed), but a word outside the lexicon can only come out as a known word.

The LM is estimated from the sentences the model keeps (its ``lm_text`` build argument, stored
in the checkpoint) and written once per text and order to a cache folder keyed by their hash.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import torch

from definitions.models.conformer.ngram import SPACE, write_arpa

BLANK = "<b>"


@dataclass(frozen=True)
class BeamConfig:
    lm_order: int = 6
    beam_size: int = 16
    lm_weight: float = 2.0
    word_score: float = 0.0  # bonus per space (word) emitted: balances the LM's preference for fewer words
    beam_threshold: float = 25.0
    unit: str = "char"  # "char": lexicon-free character LM; "word": lexicon + word LM


@contextlib.contextmanager
def _quiet_stderr():
    """Silence file descriptor 2 (C++ code writes there, below Python's sys.stderr)."""
    try:
        saved = os.dup(2)
    except OSError:
        yield
        return
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def lm_cache_dir() -> Path:
    return Path(os.environ.get("MLSYSTEM_LM_CACHE", Path(tempfile.gettempdir()) / "mlsystem-lm"))


def arpa_for(sentences: Sequence[str], order: int, chars: str, unit: str = "char") -> Path:
    """The ARPA file of ``sentences`` at ``order`` (estimated on first use, then reused)."""
    key = hashlib.sha256(f"{order}\n{chars}\n{unit}\n".encode() + "\n".join(sentences).encode()).hexdigest()[:16]
    path = lm_cache_dir() / f"{unit}s-{order}-{key}.arpa"
    if not path.is_file():
        vocab = [SPACE if c == " " else c for c in chars] if unit == "char" else []
        write_arpa(sentences, order, path.with_name(f"{path.stem}.{os.getpid()}.arpa"), vocab, unit).replace(path)
    return path


def _write_once(path: Path, lines: Sequence[str]) -> Path:
    if not path.is_file():
        tmp = path.with_name(f"{path.name}.{os.getpid()}")
        tmp.write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")
        tmp.replace(path)
    return path


class BeamSearchDecoder:
    """``decode(log_probs (B, T, V), lengths) -> texts`` with an LM over ``chars`` (blank = 0)."""

    def __init__(self, chars: str, sentences: Sequence[str], config: BeamConfig):
        from torchaudio.models.decoder import ctc_decoder

        if not sentences:
            raise ValueError("decoder: beam search needs LM text (the model has no lm_text)")
        self.chars, self.config = chars, config
        if config.unit not in ("char", "word"):
            raise ValueError(f"unit: must be char or word, got {config.unit!r}")
        tokens = [BLANK, *(SPACE if c == " " else c for c in chars)]
        arpa = arpa_for(sentences, config.lm_order, chars, config.unit)
        if config.unit == "word":
            # Every word of the LM text, spelled in the model's characters and ended by the space token.
            words = sorted({w for s in sentences for w in s.split() if all(c in chars for c in w)})
            lexicon = _write_once(arpa.with_suffix(".lexicon"), [f"{w} {' '.join(w)} {SPACE}" for w in words])
            with _quiet_stderr():
                self._decoder = ctc_decoder(
                    lexicon=str(lexicon), tokens=tokens, lm=str(arpa), nbest=1, beam_size=config.beam_size,
                    beam_threshold=config.beam_threshold, lm_weight=config.lm_weight, word_score=config.word_score,
                    sil_score=0.0, log_add=False, blank_token=BLANK, sil_token=SPACE, unk_word="<unk>",
                )
            return
        # Lexicon-free, the decoder asks the LM about token *indices*: the LM dictionary must list
        # the tokens in their own order (torchaudio's default dictionary is ordered otherwise).
        lm_dict = _write_once(arpa.with_suffix(".dict"), [*tokens, "<unk>"])
        with _quiet_stderr():  # KenLM prints a progress bar while it reads the ARPA file
            self._decoder = ctc_decoder(
                lexicon=None, tokens=tokens, lm=str(arpa), lm_dict=str(lm_dict), nbest=1,
                beam_size=config.beam_size, beam_threshold=config.beam_threshold, lm_weight=config.lm_weight,
                # Lexicon-free, flashlight ignores word_score: a word ends at the space token,
                # whose insertion score is sil_score.
                word_score=0.0, sil_score=config.word_score, log_add=False, blank_token=BLANK,
                sil_token=SPACE, unk_word="<unk>",
            )

    def decode(self, log_probs: torch.Tensor, lengths: torch.Tensor) -> list[str]:
        emissions = log_probs.detach().float().cpu().contiguous()
        results = self._decoder(emissions, lengths.detach().cpu().to(torch.int32))
        out = []
        for hyps in results:
            if self.config.unit == "word":
                out.append(" ".join(hyps[0].words) if hyps else "")
                continue
            ids = hyps[0].tokens.tolist() if hyps else []
            # The decoder pads each hypothesis with the space token at both ends.
            text = "".join(self.chars[i - 1] for i in ids if i > 0)
            out.append(" ".join(text.split()))
        return out
