"""Model-layer plots of the wrapped demo Transformer: curves across resumes, and what it writes."""

from __future__ import annotations

from MLSystem.base import BasePlot, new_figure
from MLSystem.plots import LearningRate, LossCurves, ValidationMetrics


class Continuations(BasePlot):
    """Validation prompts and the model's greedy continuation (trained weights)."""

    title = "Greedy continuations"
    needs_weights = True
    defaults = {"prompts": 3, "prompt_tokens": 48, "new_tokens": 64}

    def execute(self, context):
        dm, model = context.datamodule, context.model
        model.eval()
        k, n = int(self.params["prompt_tokens"]), int(self.params["new_tokens"])
        lines = []
        for i in range(min(int(self.params["prompts"]), len(dm.val_set))):
            prompt = dm.val_set.ids[i * k:(i + 1) * k].tolist()
            out = model.continue_text(prompt, n)
            lines.append(f"{dm.decode(prompt)!r}\n  -> {dm.decode(out[len(prompt):])!r}")
        fig, ax = new_figure(size=(10, 1.2 + 1.1 * len(lines)))
        ax.axis("off")
        ax.text(0, 1, "\n\n".join(lines), family="monospace", fontsize=7, va="top", wrap=True)
        return fig


PLOTS = [LossCurves, LearningRate, ValidationMetrics, Continuations]
