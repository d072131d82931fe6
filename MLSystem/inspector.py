"""What the project defines: datasets, models, adapters, their config fields and their plots.

    python -m MLSystem.inspector                              # every definition and its plots
    python -m MLSystem.inspector dataset=digits model=cnn     # merged fields: type, value, layer, help
    python -m MLSystem.inspector --json ...

Plots are found through the registry: ``plots.py`` in the folder of a dataset, model or adapter
(an old ``plot.py`` still works, with a deprecation warning; see :mod:`MLSystem.utils.base_plot`).
"""

from __future__ import annotations

import argparse
import importlib.util
import inspect
import json
import sys
from dataclasses import dataclass
from typing import Any, Sequence

from MLSystem.builder import ExperimentBuilder
from MLSystem.errors import MLSystemError
from MLSystem.paths import ProjectPaths
from MLSystem.registry import Entry, Registry


@dataclass(frozen=True)
class PlotSpec:
    """One discovered plot class and where it was found."""

    name: str
    title: str
    layer: str
    needs_weights: bool
    cls: type
    source: str  # the plots.py file

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "title": self.title, "layer": self.layer,
                "needs_weights": self.needs_weights, "source": self.source}


def _load_plot_module(entry: Entry):
    file = entry.plot_module_file()
    if not file.is_file():
        return None
    dotted = f"{entry.module_base}.{file.stem}"
    if dotted in sys.modules:
        return sys.modules[dotted]
    return importlib.import_module(dotted)


def plots_of(entry: Entry, layer: str) -> list[PlotSpec]:
    """The plots an entry's plot module defines (``PLOTS``, else its own ``BasePlot`` subclasses).

    Raises :class:`MLSystemError` with one line if the module cannot be imported.
    """
    from MLSystem.utils.base_plot import BasePlot  # lazy: matplotlib, only when plots are listed

    file = entry.plot_module_file()
    try:
        mod = _load_plot_module(entry)
    except Exception as exc:
        raise MLSystemError(f"{file}: import failed: {type(exc).__name__}: {exc}") from exc
    if mod is None:
        return []
    listed = getattr(mod, "PLOTS", None)
    if listed is None:
        listed = [v for v in vars(mod).values()
                  if isinstance(v, type) and issubclass(v, BasePlot) and v.__module__ == mod.__name__
                  and not v.__name__.startswith("_") and not inspect.isabstract(v)]
    specs = []
    for cls in listed:
        if not (isinstance(cls, type) and issubclass(cls, BasePlot)):
            raise MLSystemError(f"{file}: PLOTS entry {cls!r} is not a BasePlot subclass")
        specs.append(PlotSpec(cls.plot_name(), cls.plot_title(), layer, bool(cls.needs_weights), cls, str(file)))
    return specs


def discover_plots(entries: dict[str, Entry]) -> tuple[list[PlotSpec], list[str]]:
    """Plots of the selected dataset, adapter and model, in that order, and one-line problems of
    plot modules that could not be loaded (the other layers' plots are still returned)."""
    specs, problems = [], []
    for layer in ("dataset", "adapter", "model"):
        try:
            specs.extend(plots_of(entries[layer], layer))
        except MLSystemError as exc:
            problems.append(f"{layer}: {exc}")
    return specs, problems


def describe_registry(paths: ProjectPaths | None = None) -> dict[str, Any]:
    """Every definition with its description, config class and plots (for listings and the cockpit)."""
    registry = Registry.load(paths or ProjectPaths.discover())
    out: dict[str, Any] = {"datasets": {}, "models": {}}

    def info(entry: Entry, layer: str) -> dict[str, Any]:
        try:
            plots = [p.as_dict() for p in plots_of(entry, layer)]
            problem = None
        except MLSystemError as exc:
            plots, problem = [], str(exc)
        return {"path": str(entry.folder), "config": entry.config_name, "class": entry.class_name,
                "description": entry.description, "plots": plots, "plot_error": problem}

    for name in sorted(registry.datasets):
        out["datasets"][name] = info(registry.dataset(name), "dataset")
    for name in sorted(registry.models):
        model = registry.model(name)
        out["models"][name] = {**info(model, "model"), "adapters": {
            a: info(entry, "adapter") for a, entry in sorted(registry.adapters.get(name, {}).items())}}
    return out


def describe_fields(overrides: Sequence[str], paths: ProjectPaths | None = None) -> list[dict[str, Any]]:
    """The merged fields of a selection: name, type, value, default, layer it comes from, identity, help."""
    ctx = ExperimentBuilder(list(overrides), paths=paths).build()
    m = ctx.merged
    return [{"name": name, "type": getattr(info.type, "__name__", str(info.type)), "value": m.params[name],
             "default": m.defaults[name], "source": m.sources[name], "identity": info.identity,
             "choices": list(info.choices) if info.choices else None, "help": info.help}
            for name, info in m.fields.items()]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m MLSystem.inspector", description=__doc__.split("\n\n")[0])
    parser.add_argument("overrides", nargs="*", help="dataset=NAME model=NAME [key=value ...]: show merged fields")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    args = parser.parse_args(argv)
    try:
        if args.overrides:
            fields = describe_fields(args.overrides)
            if args.json:
                print(json.dumps(fields, indent=2, default=str))
                return 0
            for f in fields:
                mark = "*" if f["identity"] else " "
                print(f"{mark} {f['name']:<26} {f['type']:<6} {f['value']!r:<14} [{f['source']}]  {f['help']}")
            print("\n* part of the experiment ID; [layer] where the value comes from")
            return 0
        desc = describe_registry()
    except MLSystemError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return int(exc.exit_code)
    if args.json:
        print(json.dumps(desc, indent=2))
        return 0
    for kind in ("datasets", "models"):
        print(f"{kind}:")
        for name, d in desc[kind].items():
            print(f"  {name:<14} {d['description']}")
            _print_plots(d, "    ")
            for a, ad in d.get("adapters", {}).items():
                print(f"    adapter {a}")
                _print_plots(ad, "      ")
    return 0


def _print_plots(d: dict[str, Any], indent: str) -> None:
    if d["plot_error"]:
        print(f"{indent}plots: ERROR {d['plot_error']}")
    for p in d["plots"]:
        weights = " (needs weights)" if p["needs_weights"] else ""
        print(f"{indent}plot {p['layer']}/{p['name']}: {p['title']}{weights}")


if __name__ == "__main__":
    from MLSystem.utils.cli import run_main  # closed pipe, Ctrl-C, full disk: one line each

    sys.exit(run_main(main))
