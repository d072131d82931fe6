"""The offline LJSpeech-format corpus generator (``python -m definitions.tools.ljspeech_synth``).

It lives outside ``definitions/datasets/ljspeech/``: the registry fingerprints every file of a
dataset's folder, and changing the generator must not make existing experiments warn "code
changed". The dataset itself only reads corpora (this one, or the real LJSpeech-1.1).
"""

from definitions.tools.ljspeech_synth.engines.espeak import EspeakEngine
from definitions.tools.ljspeech_synth.synth import generate, main

# espeak's voices (the engine every install has); other engines list theirs on their classes.
TRAIN_VOICES = EspeakEngine.voices
HELDOUT_VOICE = EspeakEngine.heldout_voices[0]

__all__ = ["HELDOUT_VOICE", "TRAIN_VOICES", "generate", "main"]
