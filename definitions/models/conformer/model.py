"""Conformer-CTC speech recognizer: log-mel frames (SpecAugment in training) -> convolutional
subsampling -> ``torchaudio.models.Conformer`` -> per-frame character log-probabilities (CTC;
greedy decoding or prefix beam search with a character n-gram LM of the training text).

The model knows nothing about datasets: its adapter gives it the vocabulary and the feature
settings, which it keeps (checkpoint hyperparameters) so :meth:`ConformerCTC.inference` can
turn raw audio at any sample rate into text on its own.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torchaudio
from torch import nn
from torch.nn import functional as F
from torchmetrics.text import CharErrorRate, WordErrorRate

from definitions.models.conformer.decoding import BeamConfig, BeamSearchDecoder
from definitions.models.conformer.features import FeatureConfig, LogMel
from definitions.models.conformer.spec_augment import mel_centers, random_vtlp, spec_augment
from definitions.models.conformer.vocab import CharVocab
from MLSystem.base import BaseModel, atomic_write_text

DECODING_KEYS = ("decoder", "lm_order", "word_lm_order", "lm_weight", "word_score", "beam_size")
SILENCE_PEAK = 1e-3  # below -60 dBFS an input is treated as silence
STRIDES = {2: (2, 1), 3: (3, 1), 4: (2, 2), 6: (3, 2)}


class ConvSubsampling(nn.Module):
    """Two 1-D convolutions over time that reduce the frame rate by ``factor``."""

    def __init__(self, n_mels: int, d_model: int, factor: int):
        super().__init__()
        self.strides = STRIDES[factor]
        self.convs = nn.ModuleList(
            nn.Conv1d(n_mels if i == 0 else d_model, d_model, kernel_size=2 * s + 1, stride=s, padding=s)
            for i, s in enumerate(self.strides)
        )

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = x.transpose(1, 2)  # (B, F, T)
        for conv, s in zip(self.convs, self.strides):
            x = F.gelu(conv(x))
            lengths = torch.div(lengths - 1, s, rounding_mode="floor") + 1  # padding = s, kernel = 2s+1
        return x.transpose(1, 2), lengths


class ConformerCTC(BaseModel):
    def __init__(self, params: dict, vocab: str, feature_config: dict[str, Any], lm_text_path: str = ""):
        super().__init__(params, vocab=vocab, feature_config=feature_config, lm_text_path=lm_text_path)
        self.vocab = CharVocab(vocab)
        self.feature_config = FeatureConfig(**feature_config)
        self.featurizer = LogMel(self.feature_config)  # used by inference(); training data comes featurized
        fc = self.feature_config
        self._f_top = min(fc.f_max, fc.sample_rate / 2)  # the mel bands' range, for VTLP
        self._mel_centers = mel_centers(fc.n_mels, fc.f_min, self._f_top)
        d = int(params["d_model"])
        self.subsample = ConvSubsampling(self.feature_config.n_mels, d, int(params["subsampling"]))
        self.encoder = torchaudio.models.Conformer(
            input_dim=d, num_heads=int(params["num_heads"]), ffn_dim=int(params["ffn_dim"]),
            num_layers=int(params["num_layers"]), depthwise_conv_kernel_size=int(params["conv_kernel"]),
            dropout=float(params["dropout"]),
        )
        self.head = nn.Sequential(nn.Dropout(float(params["dropout"])), nn.Linear(d, len(self.vocab)))
        self.val_cer, self.val_wer = CharErrorRate(), WordErrorRate()
        self._samples: list[dict[str, str]] = []
        # The training text the decoder's n-gram LM is estimated from: every target sentence the
        # model trained on, collected from its batches and kept in the state dict (UTF-8 bytes), so
        # a checkpoint alone (any machine, no corpus) decodes with the LM.
        self.register_buffer("lm_text", torch.zeros(0, dtype=torch.uint8))
        self._lm_sentences: set[str] = set()
        if lm_text_path and Path(lm_text_path).is_file():  # extra LM text (a loaded checkpoint's adds to it)
            lines = Path(lm_text_path).read_text(encoding="utf-8").splitlines()
            self._lm_sentences.update(t for t in map(self.vocab.normalize, lines) if t)
        self._beam: tuple[tuple, BeamSearchDecoder] | None = None

    def forward(self, features: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(B, T, n_mels)`` features -> ``(B, T', vocab)`` log-probabilities and ``T'`` lengths."""
        x, lengths = self.subsample(features, lengths)
        x, lengths = self.encoder(x, lengths)
        return self.head(x).log_softmax(dim=-1), lengths

    def ctc_loss(self, batch: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        log_probs, lengths = self(batch["features"], batch["feature_lengths"])
        loss = F.ctc_loss(log_probs.transpose(0, 1).float(), batch["targets"], lengths, batch["target_lengths"],
                          blank=self.vocab.blank, zero_infinity=True)
        return loss, log_probs, lengths

    def greedy_decode(self, log_probs: torch.Tensor, lengths: torch.Tensor) -> list[str]:
        best = log_probs.argmax(dim=-1).cpu()
        return [self.vocab.decode_ctc(best[i, : int(n)].tolist()) for i, n in enumerate(lengths.cpu())]

    # -- training ------------------------------------------------------------------------------
    def training_loss(self, batch: dict[str, Any]) -> torch.Tensor:
        """CTC loss of a batch after VTLP and SpecAugment (the whole training computation)."""
        p = self.params
        features = random_vtlp(batch["features"], self._mel_centers, self._f_top, float(p.get("vtlp", 0.0)))
        features = spec_augment(features, batch["feature_lengths"], int(p["freq_masks"]),
                                int(p["freq_mask_width"]), int(p["time_masks"]), int(p["time_mask_width"]))
        return self.ctc_loss({**batch, "features": features})[0]

    def training_step(self, batch, batch_idx):
        self._lm_sentences.update(batch["texts"])
        loss = self.training_loss(batch)
        self.log("train_loss", loss, on_step=True, on_epoch=True, batch_size=len(batch["texts"]))
        return loss

    def validation_step(self, batch, batch_idx):
        loss, log_probs, lengths = self.ctc_loss(batch)
        hyps, refs = self.greedy_decode(log_probs, lengths), batch["texts"]
        self.val_cer.update(hyps, refs)
        self.val_wer.update(hyps, refs)
        n = len(refs)
        self.log("val_loss", loss, batch_size=n)
        self.log("val_cer", self.val_cer, batch_size=n)
        self.log("val_wer", self.val_wer, batch_size=n)
        room = int(self.params.get("samples_per_epoch", 0)) - len(self._samples)
        self._samples += [{"id": i, "ref": r, "hyp": h} for i, r, h in zip(batch["ids"], refs, hyps)][:max(0, room)]

    def on_validation_epoch_start(self) -> None:
        self._samples = []

    def on_validation_epoch_end(self) -> None:
        if self._samples and not self.trainer.sanity_checking and self.trainer.is_global_zero:
            write_samples(Path(self.trainer.default_root_dir) / "samples.jsonl", self.current_epoch,
                          int(self.global_step), self._samples)

    # -- the LM text in checkpoints ------------------------------------------------------------
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        blob = "\n".join(sorted(self._lm_sentences)).encode("utf-8")
        checkpoint["state_dict"]["lm_text"] = torch.frombuffer(bytearray(blob), dtype=torch.uint8) if blob \
            else torch.zeros(0, dtype=torch.uint8)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        key = prefix + "lm_text"
        if key not in state_dict:  # a checkpoint from before the LM: greedy decoding only
            state_dict[key] = torch.zeros(0, dtype=torch.uint8)
        self.lm_text = torch.empty_like(state_dict[key])  # its length is the saved text's
        text = bytes(state_dict[key].cpu().numpy().tobytes()).decode("utf-8")
        # A union, not a replacement: a resumed run's saved text already holds its own corpus' text,
        # and a warm start (init_from) onto another corpus keeps what the parent learned from and
        # adds the new corpus' lm_text.txt.
        self._lm_sentences |= set(text.split("\n")) if text else set()
        self._beam = None
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    @property
    def lm_sentences(self) -> frozenset[str]:
        """The sentences the decoder's n-gram LM is estimated from (normalized)."""
        return frozenset(self._lm_sentences)

    # -- decoding --------------------------------------------------------------------------------
    def configure_decoding(self, **settings: Any) -> None:
        """Change ``decoder`` / ``lm_order`` / ``lm_weight`` / ``word_score`` / ``beam_size``."""
        unknown = set(settings) - set(DECODING_KEYS)
        if unknown:
            raise ValueError(f"configure_decoding: unknown setting(s) {sorted(unknown)}; valid: {', '.join(DECODING_KEYS)}")
        self.params.update(settings)
        self._beam = None

    def decode(self, log_probs: torch.Tensor, lengths: torch.Tensor) -> list[str]:
        """Texts of a batch with the configured decoder (greedy when the model has no LM text)."""
        if self.params.get("decoder", "greedy") in ("beam_lm", "beam_word") and self._lm_sentences:
            return self.beam_decoder().decode(log_probs, lengths)
        return self.greedy_decode(log_probs, lengths)

    def beam_decoder(self) -> BeamSearchDecoder:
        p = self.params
        word = p.get("decoder") == "beam_word"
        config = BeamConfig(lm_order=int(p.get("word_lm_order", 3) if word else p.get("lm_order", 6)),
                            beam_size=int(p.get("beam_size", 16)), lm_weight=float(p.get("lm_weight", 2.0)),
                            word_score=float(p.get("word_score", 0.0)), unit="word" if word else "char")
        key = (config, len(self._lm_sentences))
        if self._beam is None or self._beam[0] != key:
            self._beam = (key, BeamSearchDecoder(self.vocab.chars, sorted(self._lm_sentences), config))
        return self._beam[1]

    # -- inference -----------------------------------------------------------------------------
    @torch.no_grad()
    def inference(self, waveform: np.ndarray | torch.Tensor, sample_rate: int = 22050) -> str:
        """Transcribe one recording (mono or channels-first/last, any sample rate); silence -> ""."""
        x = waveform.float() if torch.is_tensor(waveform) else torch.from_numpy(np.asarray(waveform, dtype=np.float32))
        if x.ndim == 2:  # average the channel axis (the shorter one)
            x = x.mean(dim=0 if x.shape[0] <= x.shape[1] else 1)
        if x.ndim != 1:
            raise ValueError(f"waveform: expected 1-D (or 2-D multichannel) audio, got shape {tuple(x.shape)}")
        if int(sample_rate) <= 0:
            raise ValueError(f"sample_rate: must be > 0, got {sample_rate}")
        x = torch.nan_to_num(x, nan=0.0, posinf=1.0, neginf=-1.0)
        if x.numel() == 0 or float(x.abs().max()) < SILENCE_PEAK:
            return ""
        if int(sample_rate) != self.feature_config.sample_rate:
            x = torchaudio.functional.resample(x, int(sample_rate), self.feature_config.sample_rate)
        was_training = self.training
        self.eval()
        try:
            feats = self.featurizer(x.to(self.device))[None]
            log_probs, lengths = self(feats, torch.tensor([feats.shape[1]], device=self.device))
        finally:
            self.train(was_training)
        return self.decode(log_probs, lengths)[0]


def write_samples(path: Path, epoch: int, step: int, samples: list[dict[str, str]]) -> None:
    """One JSON row per epoch in ``samples.jsonl``, appended (live views tail the file); an epoch
    trained again after a resume replaces its earlier row."""
    row = json.dumps({"epoch": epoch, "step": step, "samples": samples}, ensure_ascii=False)
    kept, replaced = [], False
    if path.exists():
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                same = json.loads(line).get("epoch") == epoch
            except json.JSONDecodeError:  # a line cut by a kill mid-write
                same = True
            replaced |= same
            if not same:
                kept.append(line)
    if replaced:
        atomic_write_text(path, "".join(f"{line}\n" for line in [*kept, row]))
    else:
        with open(path, "a", encoding="utf-8") as fh:
            fh.write(row + "\n")
