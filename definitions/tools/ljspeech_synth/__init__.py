"""The offline LJSpeech-format corpus generator (``python -m definitions.tools.ljspeech_synth``).

It lives outside ``definitions/datasets/ljspeech/``: the registry fingerprints every file of a
dataset's folder, and changing the generator must not make existing experiments warn "code
changed". The dataset itself only reads corpora (this one, or the real LJSpeech-1.1).
"""

from definitions.tools.ljspeech_synth.synth import HELDOUT_VOICE, TRAIN_VOICES, generate, main

__all__ = ["HELDOUT_VOICE", "TRAIN_VOICES", "generate", "main"]
