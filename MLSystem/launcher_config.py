"""Cluster options of the Slurm executor: ``configs/launcher/slurm.yaml``, overridden by flags.

``load_launcher_config(paths, partition="gpu", time_min=60)`` reads the project's file (missing
file: the defaults below), applies the overrides (``None`` = not given) and checks everything at
once: unknown keys name the closest valid ones, wrong types name the key and the value.
:func:`slurm_parameters` turns a config plus a job's ``devices``/``num_nodes`` into the
parameters of submitit's ``SlurmExecutor.update_parameters``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from MLSystem.errors import ConfigError, suggest
from MLSystem.paths import ProjectPaths


@dataclass
class LauncherConfig:
    partition: str | None = None
    account: str | None = None
    qos: str | None = None
    time_min: int = 240
    signal_delay_s: int = 120
    max_requeues: int = 20
    gpus_per_node: int | None = None
    cpus_per_task: int = 4
    mem_gb: float | None = None
    array_parallelism: int = 16
    max_running: int = 16
    extra_sbatch: list[str] = field(default_factory=list)
    setup: list[str] = field(default_factory=list)


_TYPES = {"partition": str, "account": str, "qos": str, "time_min": int, "signal_delay_s": int,
          "max_requeues": int, "gpus_per_node": int, "cpus_per_task": int, "mem_gb": float,
          "array_parallelism": int, "max_running": int, "extra_sbatch": list, "setup": list}
_OPTIONAL = {"partition", "account", "qos", "gpus_per_node", "mem_gb"}
_MINIMUM = {"time_min": 1, "signal_delay_s": 0, "max_requeues": 0, "gpus_per_node": 0, "cpus_per_task": 1,
            "mem_gb": 0, "array_parallelism": 1, "max_running": 1}


def launcher_file(paths: ProjectPaths, name: str = "slurm") -> Path:
    return paths.configs / "launcher" / f"{name}.yaml"


def load_launcher_config(paths: ProjectPaths | None = None, name: str = "slurm", **overrides: Any) -> LauncherConfig:
    """The project's launcher defaults with ``overrides`` applied (``None`` values are ignored)."""
    import yaml

    paths = paths or ProjectPaths.discover()
    source = launcher_file(paths, name)
    values: dict[str, Any] = {}
    if source.is_file():
        try:
            loaded = yaml.safe_load(source.read_text(encoding="utf-8"))
        except yaml.YAMLError as exc:
            raise ConfigError(f"{source}: not valid YAML ({str(exc).splitlines()[0]})") from None
        if loaded is not None and not isinstance(loaded, dict):
            raise ConfigError(f"{source}: expected a mapping of option: value")
        values.update(loaded or {})
    values.update({k: v for k, v in overrides.items() if v is not None})
    return _check(values, source)


def _check(values: dict[str, Any], source: Path) -> LauncherConfig:
    problems, clean = [], {}
    for key, value in values.items():
        if key not in _TYPES:
            problems.append(f"{key}: not a launcher option{suggest(key, _TYPES)} (in {source.name} or flags)")
            continue
        want = _TYPES[key]
        if value is None:
            if key in _OPTIONAL:
                clean[key] = None
            else:
                problems.append(f"{key}: needs a value")
            continue
        if want is list:
            if isinstance(value, str):
                value = [value]
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                problems.append(f"{key}: expected a list of strings, got {value!r}")
                continue
        elif want is str:
            value = str(value)
        else:
            try:
                if isinstance(value, bool) or (want is int and isinstance(value, float) and not value.is_integer()):
                    raise ValueError
                value = want(value)
            except (TypeError, ValueError):
                problems.append(f"{key}: expected {'an integer' if want is int else 'a number'}, got {value!r}")
                continue
            if key in _MINIMUM and value < _MINIMUM[key]:
                problems.append(f"{key}: must be >= {_MINIMUM[key]}, got {value}")
                continue
        clean[key] = value
    config = LauncherConfig(**clean)
    if config.signal_delay_s >= config.time_min * 60:
        problems.append(f"signal_delay_s: {config.signal_delay_s}s leaves no time before the warning signal "
                        f"(time_min={config.time_min})")
    for line in config.extra_sbatch:
        if not line.strip().startswith("--"):
            problems.append(f"extra_sbatch: {line!r} is not an sbatch option (expected --name=value or --flag)")
    if problems:
        raise ConfigError(problems)
    return config


def _sbatch_options(lines: list[str]) -> dict[str, Any]:
    """``["--constraint=a100", "--mail-type END", "--exclusive"]`` -> submitit's ``additional_parameters``
    (one option per line; a flag without a value becomes ``True``)."""
    out: dict[str, Any] = {}
    for line in lines:
        body = line.strip()[2:]
        name, value = (body.split("=", 1) if "=" in body else body.split(None, 1) if " " in body else (body, True))
        out[name.strip().replace("-", "_")] = value.strip() if isinstance(value, str) else value
    return out


def slurm_parameters(config: LauncherConfig, *, devices: int = 1, num_nodes: int = 1, gpu: bool = False,
                     job_name: str = "mlsystem") -> dict[str, Any]:
    """Parameters for ``submitit.SlurmExecutor.update_parameters`` for one training job.

    One Slurm task per training process (``ntasks_per_node = devices``): Lightning's
    ``SLURMEnvironment`` reads its rank from Slurm and expects exactly that.
    """
    params: dict[str, Any] = {
        "job_name": job_name, "time": config.time_min, "nodes": num_nodes, "ntasks_per_node": devices,
        "cpus_per_task": config.cpus_per_task, "signal_delay_s": config.signal_delay_s,
        "array_parallelism": config.array_parallelism, "stderr_to_stdout": True,
    }
    gpus = config.gpus_per_node if config.gpus_per_node is not None else (devices if gpu else 0)
    if gpus:
        params["gpus_per_node"] = gpus
    for key in ("partition", "account", "qos"):
        if getattr(config, key):
            params[key] = getattr(config, key)
    if config.mem_gb:
        params["mem"] = f"{int(config.mem_gb * 1024)}M"
    if config.setup:
        params["setup"] = list(config.setup)
    if config.extra_sbatch:
        params["additional_parameters"] = _sbatch_options(config.extra_sbatch)
    return params


def as_dict(config: LauncherConfig) -> dict[str, Any]:
    return dataclasses.asdict(config)
