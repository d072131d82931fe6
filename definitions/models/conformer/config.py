"""Config of the `conformer` model: Conformer encoder + CTC over characters. The defaults are the
quick recipe: 8 epochs over the generator's 4 h multi-engine corpus, ~17 min of training on 2
dedicated CPU cores (bench/README.md#asr has its results and the full recipe's).

    python -m definitions.tools.ljspeech_synth --out data/ljspeech_synth --hours 4
    python -m MLSystem.execute_train dataset=ljspeech model=conformer path=data/ljspeech_synth
    # tiny config (tests, smoke runs; ~1 min on 0.35 h of speech):
    python -m MLSystem.execute_train dataset=ljspeech model=conformer d_model=96 num_layers=2 ffn_dim=192 \
        lr=3e-3 warmup_steps=60 max_epochs=12
"""

from dataclasses import dataclass

from MLSystem.base import ConfigBase, param


@dataclass
class ConformerConfig(ConfigBase):
    d_model: int = param(144, "Width of the encoder")
    num_layers: int = param(4, "Conformer blocks")
    num_heads: int = param(4, "Attention heads (must divide d_model)")
    ffn_dim: int = param(576, "Hidden width of the feed-forward modules")
    conv_kernel: int = param(15, "Depthwise convolution kernel of each block (odd)")
    subsampling: int = param(3, "Time reduction of the convolutional front end", choices=(2, 3, 4, 6))
    dropout: float = param(0.1, "Dropout inside the encoder")
    freq_masks: int = param(2, "SpecAugment: frequency masks per training utterance")
    freq_mask_width: int = param(12, "SpecAugment: widest frequency mask (mel bands)")
    time_masks: int = param(2, "SpecAugment: time masks per training utterance")
    time_mask_width: int = param(20, "SpecAugment: widest time mask (frames)")
    vtlp: float = param(0.0, "VTLP: each training utterance's frequency axis is warped by a factor drawn "
                        "from 1 +- vtlp (e.g. 0.1; 0 disables)")
    # Common fields redeclared: this model's recipe.
    lr: float = param(2e-3, "Peak learning rate")
    weight_decay: float = param(1e-3, "Weight decay")
    warmup_steps: int = param(400, "Linear warm-up steps before the schedule")
    grad_clip: float = param(5.0, "Gradient-norm clipping; 0 disables it")
    batch_size: int = param(8, "Utterances per batch (batches group similar durations)")
    # 8 epochs over 4 h of speech: more distinct sentences for the compute of 12 over 2 h (bench/README.md).
    max_epochs: int = param(8, "Epochs to train", identity=False)
    # The common layer's best_metric, redeclared: this model keeps `best.ckpt` for the lowest CER
    # (best_mode "auto" knows that *cer* is lower-is-better).
    best_metric: str = param("val_cer", "Metric whose best value is kept as best.ckpt ('' = none)", identity=False)
    # Decoding (inference, transcribe, the cockpit): not part of the identity, nothing learned changes.
    decoder: str = param("beam_lm", "CTC decoding: greedy, or prefix beam search with a character n-gram LM "
                         "(beam_lm) or a lexicon and word n-gram LM (beam_word) of the training text",
                         identity=False, choices=("greedy", "beam_lm", "beam_word"))
    lm_order: int = param(6, "Order of the character n-gram LM (beam_lm)", identity=False)
    word_lm_order: int = param(3, "Order of the word n-gram LM (beam_word)", identity=False)
    # 1.5 / 0.0 with beam_lm: the lowest validation CER + WER of bench_asr.py's grid for the quick recipe
    # with the corpus' lm_text.txt (bench/README.md; the word LM came out worse on CER).
    lm_weight: float = param(1.5, "Weight of the LM's log10 score against the acoustic log-probability", identity=False)
    word_score: float = param(0.0, "Score added per word in beam search", identity=False)
    beam_size: int = param(16, "Hypotheses kept per frame (beam_lm)", identity=False)
    samples_per_epoch: int = param(4, "Validation transcripts written to samples.jsonl each epoch", identity=False)

    def __post_init__(self) -> None:
        problems = []
        if self.d_model % self.num_heads:
            problems.append(f"num_heads: must divide d_model={self.d_model}, got {self.num_heads}")
        if self.conv_kernel % 2 == 0:
            problems.append(f"conv_kernel: must be odd, got {self.conv_kernel}")
        if min(self.freq_masks, self.freq_mask_width, self.time_masks, self.time_mask_width) < 0:
            problems.append("freq_masks/freq_mask_width/time_masks/time_mask_width: must be >= 0")
        if not 0.0 <= self.vtlp < 0.5:
            problems.append(f"vtlp: must be in [0, 0.5), got {self.vtlp}")
        if not 0.0 <= self.dropout < 1.0:
            problems.append(f"dropout: must be in [0, 1), got {self.dropout}")
        if max(self.lm_order, self.word_lm_order) > 6:  # KenLM inside flashlight-text: KENLM_MAX_ORDER=6
            problems.append(f"lm_order/word_lm_order: at most 6 (flashlight-text's KenLM), got "
                            f"{self.lm_order}/{self.word_lm_order}")
        if min(self.lm_order, self.word_lm_order, self.beam_size) < 1:
            problems.append(f"lm_order/word_lm_order/beam_size: must be >= 1, got "
                            f"{self.lm_order}/{self.word_lm_order}/{self.beam_size}")
        if problems:
            raise ValueError("; ".join(problems))


@dataclass
class ConformerFullConfig(ConformerConfig):
    """The full recipe (registry model ``conformer_full``): a larger encoder trained longer.
    ``conformer`` is the quick recipe (demo / CI). Both take any override; they differ only in
    these defaults::

        python -m MLSystem.submit dataset=ljspeech model=conformer_full path=data/ljspeech_synth
    """

    d_model: int = param(192, "Width of the encoder")
    num_layers: int = param(6, "Conformer blocks")
    ffn_dim: int = param(768, "Hidden width of the feed-forward modules")
    warmup_steps: int = param(1000, "Linear warm-up steps before the schedule")
    max_epochs: int = param(20, "Epochs to train", identity=False)  # ~90 min over the 4 h corpus on 2 CPUs
