"""Lightning's demo ``LightningTransformer``, wrapped: no Lightning code copied.

``WrappedModel`` holds the module (composition), so its constructor runs once with the real
vocabulary, its ``prepare_data`` (a WikiText2 download) never runs, and the optimizer comes from
MLSystem's common layer. What this file adds is what the demo lacks: sizes from the config,
validation metrics and an honest next-token objective (see ``_nll``).
"""

from __future__ import annotations

import torch
from pytorch_lightning.demos.transformer import LightningTransformer, Transformer
from torch.nn import functional as F

from MLSystem.base import WrappedModel


class DemoTransformer(WrappedModel):
    def __init__(self, params: dict, vocab: list[str]):
        super().__init__(params, vocab=list(vocab))
        self.vocab = list(vocab)

    def build_module(self, vocab: list[str]) -> LightningTransformer:
        module = LightningTransformer(vocab_size=len(vocab))
        p = self.params
        # The demo's constructor takes only the vocabulary size; its network is its `model`.
        module.model = Transformer(vocab_size=len(vocab), ninp=int(p["ninp"]), nhead=int(p["nhead"]),
                                   nhid=int(p["nhid"]), nlayers=int(p["nlayers"]), dropout=float(p["dropout"]))
        return module

    def _nll(self, batch) -> tuple[torch.Tensor, torch.Tensor]:
        inputs, target = batch
        # The demo's own training_step feeds `target` to the decoder; under its causal mask,
        # position i then sees the very token it predicts. Feeding `inputs` makes it predict
        # the next token from the tokens so far.
        logp = self.module(inputs, inputs)
        return F.nll_loss(logp, target.reshape(-1)), logp

    def training_step(self, batch, batch_idx):
        loss, _ = self._nll(batch)
        self.log("train_loss", loss, on_step=True, on_epoch=True)
        return loss

    def validation_step(self, batch, batch_idx):
        loss, logp = self._nll(batch)
        n = batch[1].numel()
        self.log("val_loss", loss, batch_size=n)
        self.log("val_acc", (logp.argmax(-1) == batch[1].reshape(-1)).float().mean(), batch_size=n)
        self._val_nll = getattr(self, "_val_nll", 0.0) + float(loss) * n
        self._val_tokens = getattr(self, "_val_tokens", 0) + n

    def on_validation_epoch_end(self) -> None:
        # Perplexity of the whole validation set (exp of the mean NLL per token).
        if getattr(self, "_val_tokens", 0):
            self.log("val_ppl", torch.tensor(self._val_nll / self._val_tokens).exp())
        self._val_nll, self._val_tokens = 0.0, 0

    @torch.no_grad()
    def continue_text(self, prompt_ids: list[int], n: int) -> list[int]:
        """Greedy continuation of ``prompt_ids`` by ``n`` tokens (for plots and notebooks)."""
        ids = list(prompt_ids)
        for _ in range(n):
            x = torch.tensor([ids[-256:]], device=self.device)
            logp = self.module(x, x).view(x.shape[1], -1)
            ids.append(int(logp[-1].argmax()))
        return ids
