"""The search space of a study, in hydra-optuna-sweeper's grammar, parsed by Hydra's override parser.

    lr=tag(log, interval(1e-4, 1e-1))      FloatDistribution(1e-4, 0.1, log=True)
    dropout=interval(0, 0.5)               FloatDistribution(0, 0.5)
    hidden=tag(int, interval(32, 256))     IntDistribution(32, 256)   (also for an int field)
    layers=range(1, 4)                     IntDistribution(1, 3)      (stop excluded, as in Hydra)
    batch_size=choice(32, 64, 128)         CategoricalDistribution    (so is ``a=1,2,3``)
    max_epochs=5                           fixed: passed to every trial as is

Everything that is not a sweep is a fixed override of every trial. Only the search-space keys
are Optuna parameters; a trial's overrides are the fixed ones plus one ``key=value`` per parameter.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable

from MLSystem.overrides import to_override
from MLSystem.errors import ConfigError


@dataclass
class SearchSpace:
    fixed: list[str]  # plain overrides every trial gets
    space: dict[str, Any]  # key -> optuna distribution
    text: dict[str, str]  # key -> the override as the user wrote it (study.json, --show)

    def trial_overrides(self, params: dict[str, Any]) -> list[str]:
        """The overrides of one trial: fixed ones, then each sampled parameter."""
        keys = set(params)
        return [o for o in self.fixed if o.split("=", 1)[0] not in keys] + \
            [to_override(k, params[k]) for k in self.space if k in params]


def parse_space(args: Iterable[str], int_keys: Iterable[str] = ()) -> SearchSpace:
    """Split overrides into fixed ones and a search space; ``int_keys`` are fields typed ``int``
    (an ``interval`` on them samples integers). Raises :class:`ConfigError` naming each bad one."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.core.override_parser.types import ChoiceSweep, IntervalSweep, OverrideType, RangeSweep
    from hydra.errors import HydraException
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    args, int_keys = list(args), set(int_keys)
    try:
        parsed = OverridesParser.create().parse_overrides(overrides=args)
    except HydraException as exc:
        raise ConfigError(f"override: {str(exc).splitlines()[0]} (expected key=value or key=interval(a, b), "
                          "choice(…), range(…), tag(log, interval(…)))") from None
    fixed, space, text, problems = [], {}, {}, []
    for ov in parsed:
        key = ov.key_or_group
        if ov.type == OverrideType.DEL or ov.package:
            problems.append(f"{ov.input_line}: only plain key=value overrides and search spaces are supported")
            continue
        if not ov.is_sweep_override():
            fixed.append(ov.input_line)
            continue
        value = ov.value()
        try:
            if isinstance(value, ChoiceSweep) or (isinstance(value, RangeSweep) and value.shuffle):
                choices = list(ov.sweep_iterator())
                bad = [c for c in choices if not isinstance(c, (str, int, float, bool, type(None)))]
                if bad:
                    raise ValueError(f"choices must be plain values, got {bad[0]!r}")
                dist = CategoricalDistribution(choices)
            elif isinstance(value, RangeSweep):
                step = value.step if value.step is not None else 1
                if any(isinstance(v, float) for v in (value.start, value.stop, step)):
                    import math

                    n = math.ceil((value.stop - value.start) / step - 1e-9)  # Hydra's stop is exclusive
                    last = value.start + (n - 1) * step
                    dist = FloatDistribution(float(value.start), float(last), step=float(step))
                else:
                    last = value.start + ((value.stop - 1 - value.start) // step) * step
                    dist = IntDistribution(int(value.start), int(last), step=int(step))
            elif isinstance(value, IntervalSweep):
                log = "log" in value.tags
                if "int" in value.tags or key in int_keys:
                    dist = IntDistribution(int(value.start), int(value.end), log=log)
                else:
                    dist = FloatDistribution(float(value.start), float(value.end), log=log)
            else:
                raise ValueError("not a search space optuna supports")
        except ValueError as exc:
            problems.append(f"{key}: {ov.input_line.split('=', 1)[1]}: {exc}")
            continue
        space[key], text[key] = dist, ov.input_line
    if problems:
        raise ConfigError(problems)
    if not space:
        raise ConfigError("no search space: give at least one key=interval(a, b), key=choice(…), key=range(…) "
                          "or key=a,b,c")
    return SearchSpace(fixed, space, text)
