"""Debian's ``flite``: the diphone voice ``kal16`` and the clustergen (statistical parametric)
voices ``awb``, ``rms``, ``slt``, built from recordings of real speakers.

One ``flite`` process per utterance (it starts in ~20 ms); the voices are compiled into the
binary, so nothing is read from the network.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile

import numpy as np
import soundfile as sf

from definitions.tools.ljspeech_synth.engines import Engine, Prosody


class FliteEngine(Engine):
    name = "flite"
    # kal (8 kHz) is kal16's speaker at half the bandwidth; awb_time is a talking clock.
    voices = ("kal16", "awb", "rms", "slt")
    install_hint = "install it: sudo apt-get install flite (or sudo bash scripts/install_tts.sh)"

    @classmethod
    def missing(cls) -> str | None:
        exe = shutil.which("flite")
        if exe is None:
            return "the flite program is not on PATH"
        try:
            listed = subprocess.run([exe, "-lv"], capture_output=True, text=True, timeout=30).stdout
        except (OSError, subprocess.SubprocessError) as exc:
            return f"flite -lv failed ({exc})"
        absent = [v for v in cls.voices if v not in listed.split()]
        return f"flite lacks voice(s) {', '.join(absent)}" if absent else None

    def __init__(self) -> None:
        self._dir = tempfile.mkdtemp(prefix="flite-")

    def synth(self, text: str, voice: str, prosody: Prosody, seed: int) -> tuple[np.ndarray, int]:
        out = os.path.join(self._dir, "out.wav")
        # duration_stretch > 1 is slower speech. flite is deterministic: the seed is not needed.
        cmd = ["flite", "-voice", voice, "--setf", f"duration_stretch={1.0 / prosody.rate:.3f}",
               "-t", text, "-o", out]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            raise RuntimeError(f"flite -voice {voice} failed ({done.stderr.strip()[-200:]})")
        audio, rate = sf.read(out, dtype="float32", always_2d=True)
        return audio.mean(axis=1), rate

    def __del__(self) -> None:
        shutil.rmtree(getattr(self, "_dir", ""), ignore_errors=True)


ENGINE = FliteEngine
