"""Debian's ``festival`` with its packaged English voices: the diphone voices ``kal_diphone``
(``festvox-kallpc16k``) and ``ked_diphone`` (``festvox-kdlpc16k``), and the HTS (HMM) voice
``cmu_us_slt_arctic_hts`` (``festvox-us-slt-hts``). All data is local.

One ``festival --pipe`` process per voice, fed one Scheme command per utterance: loading a voice
costs ~0.3 s, a diphone utterance then ~15 ms (``text2wave`` per utterance was 30x slower).
Its stdout is unbuffered (``stdbuf -o0``) so the end marker of each command arrives at once.
"""

from __future__ import annotations

import os
import select
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf

from definitions.tools.ljspeech_synth.engines import Engine, Prosody

VOICE_DIRS = ("/usr/share/festival/voices", "/usr/local/share/festival/voices")
PACKAGES = {"kal_diphone": "festvox-kallpc16k", "ked_diphone": "festvox-kdlpc16k",
            "cmu_us_slt_arctic_hts": "festvox-us-slt-hts"}
MARKER = "MLSYSTEM-UTTERANCE-DONE"
TIMEOUT_S = 120.0


def installed_voices() -> set[str]:
    """Voice folder names under festival's voice directories (``voices/<language>/<voice>``)."""
    return {p.name for d in VOICE_DIRS if Path(d).is_dir() for p in Path(d).glob("*/*") if p.is_dir()}


def scheme_string(text: str) -> str:
    """``text`` as a Scheme string literal."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


class FestivalEngine(Engine):
    name = "festival"
    voices = tuple(PACKAGES)
    install_hint = ("install it: sudo apt-get install festival " + " ".join(PACKAGES.values())
                    + " (or sudo bash scripts/install_tts.sh)")

    @classmethod
    def missing(cls) -> str | None:
        if shutil.which("festival") is None:
            return "the festival program is not on PATH"
        if shutil.which("stdbuf") is None:
            return "stdbuf (coreutils) is not on PATH"
        absent = [v for v in cls.voices if v not in installed_voices()]
        if absent:
            return "festival lacks voice(s) " + ", ".join(f"{v} ({PACKAGES[v]})" for v in absent)
        return None

    def __init__(self) -> None:
        self._dir = tempfile.mkdtemp(prefix="festival-")
        self._procs: dict[str, subprocess.Popen] = {}

    def _process(self, voice: str) -> subprocess.Popen:
        """The festival process speaking ``voice`` (started, and the voice loaded, on first use)."""
        if voice not in self._procs:
            self._procs[voice] = subprocess.Popen(
                ["stdbuf", "-o0", "festival", "--pipe"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT, text=True, bufsize=1)
            self._run(self._procs[voice], f"(voice_{voice})")
        return self._procs[voice]

    @staticmethod
    def _run(proc: subprocess.Popen, command: str) -> str:
        """Send ``command`` and return festival's output up to the end marker."""
        assert proc.stdin is not None and proc.stdout is not None
        # The marker is its own command: it is printed even when the one before fails.
        proc.stdin.write(f'{command}\n(format t "{MARKER}\\n")\n')
        proc.stdin.flush()
        lines = []
        while True:
            ready, _, _ = select.select([proc.stdout], [], [], TIMEOUT_S)
            line = proc.stdout.readline() if ready else ""
            if not line:
                raise RuntimeError(f"festival stopped or hung ({TIMEOUT_S:.0f} s): {''.join(lines)[-300:]}")
            if line.strip() == MARKER:
                return "".join(lines)
            lines.append(line)

    def synth(self, text: str, voice: str, prosody: Prosody, seed: int) -> tuple[np.ndarray, int]:
        out = os.path.join(self._dir, "out.wav")
        if os.path.exists(out):
            os.unlink(out)
        # Duration_Stretch > 1 is slower speech; festival is deterministic, so the seed is unused.
        said = self._run(self._process(voice), f"(begin (Parameter.set 'Duration_Stretch {1.0 / prosody.rate:.3f}) "
                         f"(utt.save.wave (utt.synth (Utterance Text {scheme_string(text)})) "
                         f"{scheme_string(out)} 'riff) nil)")
        if not os.path.exists(out):
            raise RuntimeError(f"festival voice {voice} wrote no audio for {text[:40]!r}: {said.strip()[-300:]}")
        audio, rate = sf.read(out, dtype="float32", always_2d=True)
        return audio.mean(axis=1), rate

    def __del__(self) -> None:
        for proc in getattr(self, "_procs", {}).values():
            if proc.poll() is None:
                proc.stdin.close()  # festival exits at the end of its input
                try:
                    proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    proc.kill()
        shutil.rmtree(getattr(self, "_dir", ""), ignore_errors=True)


ENGINE = FestivalEngine
