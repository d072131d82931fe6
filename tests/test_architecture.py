"""The layering of MLSystem (README "Architecture"), enforced on the source.

* Imports point one way: a module imports only modules of its own layer or below. Function-level
  imports count too (``if TYPE_CHECKING:`` imports, for hints only, do not).
* No import cycle at all, even through function-level imports.
* A function-level import of an MLSystem module is allowed only to keep a heavy dependency
  (torch, Lightning, matplotlib, NiceGUI) off a fast path, and says so: ``# lazy: <reason>``.
* ``definitions/`` uses the public surface only: ``MLSystem.base`` and ``MLSystem.plots``.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

# Lowest first. A module may import its own layer and the ones above it in this list.
LAYERS: list[tuple[str, list[str]]] = [
    ("foundation", ["MLSystem", "MLSystem.errors", "MLSystem.paths", "MLSystem.records", "MLSystem.utils",
                    "MLSystem.utils.*", "MLSystem.common_config", "MLSystem.metrics_reader", "MLSystem.jobs",
                    "MLSystem.job_hooks", "MLSystem.job_outcome", "MLSystem.scheduler", "MLSystem.placement",
                    "MLSystem.executor", "MLSystem.lightning_loggers", "MLSystem.distributed", "MLSystem.shared_lock",
                    "MLSystem.launcher_config", "MLSystem.engine_view"]),
    ("identity", ["MLSystem.hashing"]),
    ("definition bases", ["MLSystem.base.adapter", "MLSystem.base.datamodule", "MLSystem.base.model",
                          "MLSystem.base.wrapped",
                          "MLSystem.resumable", "MLSystem.optim", "MLSystem.callbacks", "MLSystem.plots",
                          "MLSystem.plots.*"]),
    ("registry", ["MLSystem.registry"]),
    ("config merge", ["MLSystem.overrides", "MLSystem.config_merge"]),
    ("stores", ["MLSystem.experiment_store", "MLSystem.runner_record", "MLSystem.queue_files",
                "MLSystem.queue_store", "MLSystem.queue_claims"]),
    ("events", ["MLSystem.events", "MLSystem.events.*"]),
    ("checkpoints, ETA", ["MLSystem.checkpoint_manager", "MLSystem.experiment_index",
                          "MLSystem.index_rows", "MLSystem.index_sqlite", "MLSystem.eta"]),
    ("builder", ["MLSystem.builder"]),
    ("entry points", ["MLSystem.execute_train", "MLSystem.loader", "MLSystem.inspector", "MLSystem.submit",
                      "MLSystem.runner", "MLSystem.runner_loop", "MLSystem.runner_remote", "MLSystem.cluster_executor", "MLSystem.compare", "MLSystem.tune",
                      "MLSystem.tune.*", "MLSystem.submitit_job"]),
    ("plot entry point", ["MLSystem.execute_plot"]),
    ("cockpit", ["MLSystem.gui", "MLSystem.gui.*", "MLSystem.gui_start"]),
    ("public surface", ["MLSystem.base"]),
]
PUBLIC = ("MLSystem.base", "MLSystem.plots")


def _module_name(path: Path) -> str:
    rel = path.relative_to(REPO).with_suffix("")
    parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
    return ".".join(parts)


MODULES = {_module_name(p): p for p in sorted((REPO / "MLSystem").rglob("*.py"))}


def layer_of(module: str) -> int:
    for i, (_, patterns) in enumerate(LAYERS):
        for pattern in patterns:
            if module == pattern or (pattern.endswith(".*") and module.startswith(pattern[:-1])):
                return i
    raise AssertionError(f"{module} is in no layer: add it to LAYERS here and to the README's Architecture")


class _Imports(ast.NodeVisitor):
    """(imported module, line, function-level?) for every import outside ``if TYPE_CHECKING:``."""

    def __init__(self) -> None:
        self.found: list[tuple[str, int, bool]] = []
        self.depth = 0

    def visit_If(self, node: ast.If) -> None:
        test = node.test
        if (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or \
                (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"):
            for child in node.orelse:
                self.visit(child)
            return
        self.generic_visit(node)

    def _function(self, node) -> None:
        self.depth += 1
        self.generic_visit(node)
        self.depth -= 1

    visit_FunctionDef = visit_AsyncFunctionDef = _function

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            self.found.append((alias.name, node.lineno, self.depth > 0))

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        base = node.module or ""
        for alias in node.names:  # ``from MLSystem import checkpoint_manager`` imports a module
            sub = f"{base}.{alias.name}"
            self.found.append((sub if sub in MODULES else base, node.lineno, self.depth > 0))


def imports_of(path: Path) -> list[tuple[str, int, bool]]:
    visitor = _Imports()
    visitor.visit(ast.parse(path.read_text(encoding="utf-8")))
    return visitor.found


def internal(module: str) -> str | None:
    """The MLSystem module an import refers to (the longest known prefix), or None if external."""
    while module:
        if module in MODULES:
            return module
        module = module.rpartition(".")[0]
    return None


GRAPH = {name: sorted({(internal(m), line, lazy) for m, line, lazy in imports_of(path) if internal(m)}
                      - {(name, line, lazy) for _, line, lazy in imports_of(path)})
         for name, path in MODULES.items()}


def test_every_module_has_a_layer():
    for name in MODULES:
        layer_of(name)


def test_imports_point_down_the_layers():
    wrong = []
    for name, edges in GRAPH.items():
        for target, line, _ in edges:
            if target != name and layer_of(target) > layer_of(name):
                wrong.append(f"{MODULES[name].relative_to(REPO)}:{line}: {name} ({LAYERS[layer_of(name)][0]}) "
                             f"imports {target} ({LAYERS[layer_of(target)][0]})")
    assert not wrong, "imports against the layering:\n" + "\n".join(wrong)


def test_no_import_cycles_even_through_function_level_imports():
    graph = {name: {t for t, _, _ in edges if t != name} for name, edges in GRAPH.items()}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def strongconnect(v: str) -> None:  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                strongconnect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for v in graph:
        if v not in index:
            strongconnect(v)
    assert not cycles, f"import cycles: {cycles}"


def test_function_level_imports_of_mlsystem_say_why():
    silent = []
    for name, path in MODULES.items():
        lines = path.read_text(encoding="utf-8").splitlines()
        for target, line, lazy in GRAPH[name]:
            if lazy and "# lazy:" not in lines[line - 1] and "# lazy:" not in lines[line - 2]:
                silent.append(f"{path.relative_to(REPO)}:{line}: {lines[line - 1].strip()}")
    assert not silent, ("function-level imports without a '# lazy: <reason>' comment (import at module level "
                        "unless it keeps torch/Lightning/matplotlib/NiceGUI off a fast path):\n" + "\n".join(silent))


@pytest.mark.parametrize("path", sorted((REPO / "definitions").rglob("*.py")),
                         ids=lambda p: str(p.relative_to(REPO)))
def test_definitions_use_only_the_public_surface(path):
    bad = [f"{path.relative_to(REPO)}:{line}: {module}" for module, line, _ in imports_of(path)
           if module.split(".")[0] == "MLSystem" and module not in PUBLIC]
    assert not bad, "definitions may import only MLSystem.base and MLSystem.plots:\n" + "\n".join(bad)


def test_the_public_surface_is_importable_without_torch():
    """``from MLSystem.base import ConfigBase, param`` (every config.py) must not import torch."""
    import subprocess
    import sys

    code = ("import sys; from MLSystem.base import ConfigBase, param, ProjectPaths, BaseAdapter; "
            "assert 'torch' not in sys.modules and 'matplotlib' not in sys.modules, sorted(sys.modules)")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)
