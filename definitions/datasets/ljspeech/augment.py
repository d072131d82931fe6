"""Waveform augmentation of training utterances that models real recordings.

* **Speed perturbation** (Kaldi / ESPnet recipe): resample by 0.9 / 1.0 / 1.1, which changes
  tempo and pitch together, like a faster or slower, higher or lower speaker.
* **Room reverberation**: convolution with a room impulse response simulated by
  ``pyroomacoustics`` (image-source method, shoebox rooms of random size and RT60 0.15-0.7 s,
  random source and microphone positions). Simulating a room costs ~35 ms, so a bank of
  ``RIR_BANK`` responses is simulated once per seed and each utterance draws one of them.
* **Additive noise** at a random SNR: white, pink, brown, or babble made of 2-4 other training
  utterances.
* **Telephone band**: 8 kHz sampling, 300-3400 Hz band-pass and 8-bit mu-law (G.711-like), back
  at the corpus rate.

Every random choice for an item comes from ``rng_for(seed, epoch, index)`` — never from global
state — so an epoch's augmented audio is a pure function of those three numbers: a run resumed
mid-epoch (in any worker process) sees exactly what the uninterrupted run saw.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from definitions.datasets.ljspeech.config import parse_speeds

RIR_BANK = 48  # simulated rooms per (seed, sample rate)
NOISES = ("white", "pink", "brown", "babble")
_STREAM = 0xA0D10  # separates this RNG stream from any other drawn from (seed, epoch, index)


@dataclass(frozen=True)
class AugmentConfig:
    """What may be applied and how often (the dataset config's ``augment_*`` fields)."""

    speeds: tuple[float, ...] = (0.9, 1.0, 1.1)
    reverb_prob: float = 0.3
    noise_prob: float = 0.4
    snr_db: tuple[float, float] = (5.0, 30.0)
    telephone_prob: float = 0.1

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> AugmentConfig | None:
        """The config of the merged params, or None when ``augment`` is off."""
        if not params.get("augment", False):
            return None
        return cls(parse_speeds(params["augment_speeds"]), float(params["augment_reverb_prob"]),
                   float(params["augment_noise_prob"]),
                   (float(params["augment_snr_db_min"]), float(params["augment_snr_db_max"])),
                   float(params["augment_telephone_prob"]))


def rng_for(seed: int, epoch: int, index: int) -> np.random.Generator:
    """The one RNG of item ``index`` in epoch ``epoch`` of a run seeded ``seed``."""
    return np.random.default_rng(np.random.SeedSequence([int(seed) & 0xFFFFFFFF, int(epoch), int(index), _STREAM]))


@dataclass(frozen=True)
class Plan:
    """Everything drawn for one item; :meth:`apply` is deterministic given it."""

    speed: float = 1.0
    rir: int = -1  # index into the RIR bank; -1 = dry
    noise: str = ""  # one of NOISES; "" = none
    snr_db: float = 0.0
    babble: tuple[Path, ...] = ()
    telephone: bool = False
    noise_seed: int = 0
    rir_seed: int = 0

    @property
    def identity(self) -> bool:
        return self.speed == 1.0 and self.rir < 0 and not self.noise and not self.telephone

    def apply(self, audio: np.ndarray, sample_rate: int, load: Callable[[Path], np.ndarray]) -> np.ndarray:
        """The augmented float32 waveform (``load`` reads babble utterances)."""
        x = audio.astype(np.float32)
        if self.speed != 1.0:
            x = speed_perturb(x, self.speed)
        if self.rir >= 0:
            x = reverberate(x, rir_bank(self.rir_seed, sample_rate)[self.rir])
        if self.noise:
            x = add_noise(x, self._noise(len(x), load), self.snr_db)
        if self.telephone:
            x = telephone(x, sample_rate)
        peak = float(np.abs(x).max()) if x.size else 0.0
        return x / peak * 0.95 if peak > 0.99 else x

    def _noise(self, n: int, load: Callable[[Path], np.ndarray]) -> np.ndarray:
        rng = np.random.default_rng(self.noise_seed)
        if self.noise == "babble":
            out = np.zeros(n, np.float32)
            for path in self.babble:
                other = load(path)
                if other.size == 0:
                    continue
                other = np.resize(other, n + int(rng.integers(0, max(1, other.size))))  # loop, random offset
                out += other[-n:] / (np.sqrt(np.mean(other**2)) + 1e-8)
            return out
        white = rng.standard_normal(n).astype(np.float32)
        if self.noise == "white":
            return white
        from scipy import fft

        size = fft.next_fast_len(n, real=True)  # an awkward length (a large prime factor) is 50x slower
        spectrum = fft.rfft(white, size)
        freqs = np.maximum(np.arange(spectrum.size), 1.0)
        slope = 0.5 if self.noise == "pink" else 1.0  # amplitude ~ f^-1/2 (pink) or f^-1 (brown)
        return fft.irfft(spectrum / freqs**slope, size)[:n].astype(np.float32)


class Augmenter:
    """Draws a :class:`Plan` per (epoch, index) for a list of training utterance paths."""

    def __init__(self, config: AugmentConfig, seed: int, pool: Sequence[Path]):
        self.config, self.seed, self.pool = config, int(seed), list(pool)

    def plan(self, epoch: int, index: int) -> Plan:
        c, rng = self.config, rng_for(self.seed, epoch, index)
        # Always the same number of draws in the same order, whatever is chosen.
        speed = float(c.speeds[int(rng.integers(len(c.speeds)))])
        reverb, noisy, tel = (rng.random() < p for p in (c.reverb_prob, c.noise_prob, c.telephone_prob))
        rir = int(rng.integers(RIR_BANK))
        kind = NOISES[int(rng.integers(len(NOISES)))]
        snr = float(rng.uniform(*c.snr_db))
        picks = rng.integers(len(self.pool), size=int(rng.integers(2, 5)))
        noise_seed = int(rng.integers(2**63))
        babble = tuple(self.pool[int(i)] for i in picks if int(i) != index) if noisy and kind == "babble" else ()
        return Plan(speed=speed, rir=rir if reverb else -1, noise=kind if noisy and (kind != "babble" or babble) else "",
                    snr_db=snr, babble=babble, telephone=bool(tel), noise_seed=noise_seed, rir_seed=self.seed)


# -- the transforms -------------------------------------------------------------------------------
def speed_perturb(x: np.ndarray, factor: float) -> np.ndarray:
    """Play ``factor`` times faster (and higher): resample by ``1/factor`` (Kaldi's ``speed``)."""
    from scipy.signal import resample_poly

    ratio = Fraction(factor).limit_denominator(100)
    return resample_poly(x, ratio.denominator, ratio.numerator).astype(np.float32)


def reverberate(x: np.ndarray, rir: np.ndarray) -> np.ndarray:
    """``x`` in the room of ``rir``, same length and RMS (the tail past the end is dropped)."""
    from scipy.signal import oaconvolve

    wet = oaconvolve(x, rir)[: len(x)].astype(np.float32)
    return wet * (_rms(x) / (_rms(wet) + 1e-8))


def add_noise(x: np.ndarray, noise: np.ndarray, snr_db: float) -> np.ndarray:
    """``x`` plus ``noise`` scaled to ``snr_db`` below the speech power."""
    scale = _rms(x) / (_rms(noise) + 1e-8) / (10 ** (snr_db / 20))
    return (x + scale * noise[: len(x)]).astype(np.float32)


def telephone(x: np.ndarray, sample_rate: int) -> np.ndarray:
    """Narrow-band telephone channel: 8 kHz, 300-3400 Hz, 8-bit mu-law, back at ``sample_rate``."""
    from scipy.signal import butter, resample_poly, sosfilt

    g = math.gcd(8000, sample_rate)
    narrow = resample_poly(x, 8000 // g, sample_rate // g)
    narrow = sosfilt(butter(4, (300, 3400), btype="bandpass", fs=8000, output="sos"), narrow)
    peak = float(np.abs(narrow).max()) or 1.0
    mu = 255.0
    y = np.clip(narrow / peak, -1, 1)
    code = np.round((np.sign(y) * np.log1p(mu * np.abs(y)) / np.log1p(mu) + 1) / 2 * mu)  # 8 bits
    y = code / mu * 2 - 1
    y = np.sign(y) * np.expm1(np.abs(y) * np.log1p(mu)) / mu * peak
    return resample_poly(y, sample_rate // g, 8000 // g)[: len(x)].astype(np.float32)


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64)))) if x.size else 0.0


@lru_cache(maxsize=4)
def rir_bank(seed: int, sample_rate: int) -> tuple[np.ndarray, ...]:
    """``RIR_BANK`` simulated room impulse responses, a pure function of ``(seed, sample_rate)``."""
    import pyroomacoustics as pra

    rng = np.random.default_rng(np.random.SeedSequence([int(seed) & 0xFFFFFFFF, _STREAM, 1]))
    out = []
    while len(out) < RIR_BANK:
        dim = rng.uniform((3.0, 3.0, 2.4), (10.0, 8.0, 4.0))
        rt60 = rng.uniform(0.15, 0.7)
        src, mic = (rng.uniform(0.5, dim - 0.5) for _ in range(2))
        try:
            absorption, order = pra.inverse_sabine(rt60, dim)
        except ValueError:  # this RT60 is impossible in so large a room: draw another
            continue
        # Order 30 keeps simulation ~35 ms per room while the decay still reaches ~RT60 0.6 s.
        room = pra.ShoeBox(dim, fs=sample_rate, materials=pra.Material(absorption), max_order=min(order, 30))
        room.add_source(src)
        room.add_microphone(mic)
        room.compute_rir()
        rir = np.asarray(room.rir[0][0], dtype=np.float32)
        out.append(rir / (np.abs(rir).max() + 1e-8))
    return tuple(out)
