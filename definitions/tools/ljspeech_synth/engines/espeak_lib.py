"""A minimal ctypes binding of espeak-ng from the PyPI package ``espeakng-loader`` (no apt step).

Only what the corpus generator needs: pick a voice, set rate / pitch, synthesize text into
16-bit mono samples at the library's native 22050 Hz. The library keeps global state, so
use one :class:`Espeak` per process (the generator's worker processes each make their own).
"""

from __future__ import annotations

import ctypes

import numpy as np

_AUDIO_OUTPUT_SYNCHRONOUS = 2
_CHARS_UTF8 = 1
_POS_CHARACTER = 1
_RATE, _VOLUME, _PITCH, _RANGE = 1, 2, 3, 4
# int callback(short *wav, int numsamples, espeak_EVENT *events); returning 0 continues.
_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p)


class EspeakError(RuntimeError):
    """espeak-ng could not be loaded or refused a request."""


class Espeak:
    """One process's espeak-ng engine. ``synth(text)`` returns int16 samples at :attr:`sample_rate`."""

    def __init__(self) -> None:
        import espeakng_loader

        try:
            self._lib = ctypes.cdll.LoadLibrary(espeakng_loader.get_library_path())
        except OSError as exc:
            raise EspeakError(f"cannot load libespeak-ng from espeakng-loader: {exc}") from exc
        data = espeakng_loader.get_data_path().encode()
        self._lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        self.sample_rate = int(self._lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0, data, 0))
        if self.sample_rate <= 0:
            raise EspeakError(f"espeak_Initialize failed (data path {data.decode()})")
        self._chunks: list[np.ndarray] = []
        # Keep a reference: ctypes frees the trampoline when the Python object dies.
        self._callback = _CALLBACK(self._collect)
        self._lib.espeak_SetSynthCallback(self._callback)
        self._lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        self._lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        self._lib.espeak_Synth.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int,
                                           ctypes.c_uint, ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p]

    def _collect(self, wav, n: int, events) -> int:
        if n > 0:
            self._chunks.append(np.ctypeslib.as_array(wav, shape=(n,)).copy())
        return 0

    def set_voice(self, name: str) -> None:
        """A voice such as ``en-us`` or ``en+m3`` (language + variant)."""
        if self._lib.espeak_SetVoiceByName(name.encode()) != 0:
            raise EspeakError(f"espeak-ng has no voice {name!r}")

    def set_prosody(self, rate_wpm: int, pitch: int, pitch_range: int = 50) -> None:
        """Speaking rate in words per minute (80-450), base pitch and its range (0-100)."""
        for param, value in ((_RATE, rate_wpm), (_PITCH, pitch), (_RANGE, pitch_range), (_VOLUME, 100)):
            self._lib.espeak_SetParameter(param, int(value), 0)

    def synth(self, text: str, seed: int = 0) -> np.ndarray:
        """Speak ``text`` with the current voice and prosody; int16 mono samples.

        espeak-ng draws breath noise from its own random generator: seeding it per call makes
        the audio a function of ``(text, voice, prosody, seed)``.
        """
        self._lib.espeak_ng_SetRandSeed(ctypes.c_long(seed % 2**31))
        self._chunks = []
        raw = text.encode("utf-8") + b"\0"
        buf = ctypes.create_string_buffer(raw)
        if self._lib.espeak_Synth(buf, len(raw), 0, _POS_CHARACTER, 0, _CHARS_UTF8, None, None) != 0:
            raise EspeakError(f"espeak_Synth failed for {text[:40]!r}")
        self._lib.espeak_Synchronize()
        return np.concatenate(self._chunks) if self._chunks else np.zeros(0, dtype=np.int16)
