"""Dataset-layer plot of `text`: which tokens the corpus is made of."""

from __future__ import annotations

from collections import Counter

from MLSystem.base import BasePlot, new_figure


class TokenFrequencies(BasePlot):
    """The most frequent tokens of the corpus and the vocabulary size."""

    title = "Token frequencies"
    defaults = {"top": 30}

    def execute(self, context):
        dm = context.datamodule
        counts = Counter(dm.load_tokens()).most_common(int(self.params["top"]))
        fig, ax = new_figure(size=(8, 3))
        ax.bar(range(len(counts)), [c for _, c in counts])
        ax.set_xticks(range(len(counts)), [repr(t)[1:-1] or " " for t, _ in counts], fontsize=7, rotation=90)
        ax.set(ylabel="count", title=f"{len(dm.vocab)} distinct tokens, {len(dm.load_tokens())} in all")
        return fig


PLOTS = [TokenFrequencies]
