"""Speech synthesizers behind one interface, and the registry the generator picks them from.

Every engine is offline and ships its voices in a package: ``espeak`` (PyPI ``espeakng-loader``,
always there), ``flite`` and ``festival`` (Debian packages, installed by ``scripts/test.sh`` or
``scripts/install_tts.sh``). ``--engines auto`` uses the installed ones and warns about the rest;
naming a missing engine is an :class:`EngineMissing` error that says how to install it.

The piper engine and its voices are deliberately absent: an independent evaluation uses them,
and they must stay unheard by anything trained here.
"""

from __future__ import annotations

import importlib
import sys
from abc import ABC, abstractmethod
from dataclasses import dataclass

import numpy as np

# name -> module; each module defines ``ENGINE`` (an Engine subclass)
REGISTRY = {
    "espeak": "definitions.tools.ljspeech_synth.engines.espeak",
    "flite": "definitions.tools.ljspeech_synth.engines.flite",
    "festival": "definitions.tools.ljspeech_synth.engines.festival",
}


class EngineMissing(RuntimeError):
    """A requested engine (or one of its voices) is not installed."""


@dataclass(frozen=True)
class Prosody:
    """Engine-neutral delivery of one utterance; each engine maps what it supports."""

    rate: float = 1.0  # speaking-rate factor, 1 = the voice's default
    pitch: float = 0.5  # 0..1, low to high (engines without a pitch control ignore it)
    pitch_range: float = 0.5  # 0..1, flat to lively


class Engine(ABC):
    """One synthesizer. A generator worker makes one instance per chunk of utterances."""

    name: str = ""
    voices: tuple[str, ...] = ()  # voices the training corpus draws from
    heldout_voices: tuple[str, ...] = ()  # voices kept out of training (the heldout_voice split)
    install_hint: str = ""

    @classmethod
    @abstractmethod
    def missing(cls) -> str | None:
        """Why this engine cannot run here (one line), or None when it can."""

    @abstractmethod
    def synth(self, text: str, voice: str, prosody: Prosody, seed: int) -> tuple[np.ndarray, int]:
        """Speak ``text``: float32 mono samples in [-1, 1] and their sample rate."""


def engine_class(name: str) -> type[Engine]:
    """The engine class registered as ``name``."""
    if name not in REGISTRY:
        raise ValueError(f"--engines: unknown engine {name!r} (valid: {', '.join(REGISTRY)}, auto)")
    return importlib.import_module(REGISTRY[name]).ENGINE


def resolve_engines(spec: str) -> list[type[Engine]]:
    """``"auto"`` (every installed engine; missing ones are skipped with a warning) or a comma list
    (every one must be installed: a missing one raises :class:`EngineMissing` naming the fix)."""
    names = [n.strip() for n in spec.split(",") if n.strip()]
    if not names:
        raise ValueError("--engines: empty (give e.g. espeak,flite,festival or auto)")
    auto = names == ["auto"]
    out = []
    for name in REGISTRY if auto else names:
        cls = engine_class(name)
        why = cls.missing()
        if why is None:
            out.append(cls)
        elif auto:
            print(f"warning: --engines auto: skipping {name} ({why}; {cls.install_hint})", file=sys.stderr)
        else:
            raise EngineMissing(f"engine {name!r} is not usable: {why} -- {cls.install_hint}")
    if len({c.name for c in out}) != len(out):
        raise ValueError(f"--engines: {spec!r} names an engine twice")
    return out
