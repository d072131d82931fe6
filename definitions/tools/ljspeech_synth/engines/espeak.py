"""espeak-ng (formant synthesis, and its Klatt variant) through the PyPI ``espeakng-loader``.

Always available: it is a dependency of the project, so the demo needs no Debian package.
Voices are English language variants (US, British, Scottish, RP, Caribbean, New York ...)
combined with espeak's voice variants (``+m3``, ``+f2``, ``+klatt2`` ...).
"""

from __future__ import annotations

import numpy as np

from definitions.tools.ljspeech_synth.engines import Engine, Prosody


class EspeakEngine(Engine):
    name = "espeak"
    voices = ("en-us", "en", "en-us+m1", "en-us+m2", "en-us+m3", "en-us+m4", "en-us+f1", "en-us+f2",
              "en+m3", "en+m6", "en+f1", "en+f3", "en-gb-scotland+m2", "en-gb-x-rp+f4", "en-029+m7",
              "en-us-nyc+f5", "en-gb-x-gbclan+m1", "en-gb-x-gbcwmd+f2", "en-us+klatt2", "en+klatt4")
    heldout_voices = ("en-us+m5",)
    install_hint = "pip install espeakng-loader (a dependency of this project: run scripts/setup.sh)"

    @classmethod
    def missing(cls) -> str | None:
        try:
            from definitions.tools.ljspeech_synth.engines.espeak_lib import Espeak

            Espeak()
        except Exception as exc:  # noqa: BLE001 - any failure means "not usable", with its reason
            return f"espeak-ng does not load ({exc})"
        return None

    def __init__(self) -> None:
        from definitions.tools.ljspeech_synth.engines.espeak_lib import Espeak

        self._lib = Espeak()

    def synth(self, text: str, voice: str, prosody: Prosody, seed: int) -> tuple[np.ndarray, int]:
        self._lib.set_voice(voice)
        self._lib.set_prosody(round(175 * prosody.rate), round(30 + 40 * prosody.pitch),
                              round(30 + 50 * prosody.pitch_range))
        return self._lib.synth(text, seed=seed).astype(np.float32) / 32768.0, self._lib.sample_rate


ENGINE = EspeakEngine
