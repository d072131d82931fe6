"""Shared fixtures: every test gets its own project copy (configs + definitions) as MLSYSTEM_ROOT."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

# NiceGUI's User fixture (cockpit tests); it only configures a temporary storage path otherwise.
pytest_plugins = ["nicegui.testing.user_plugin"]

REPO = Path(__file__).resolve().parents[1]
# Small, fast settings for the digits examples (a 1-epoch run takes about a second).
FAST = ["n_train=256", "n_val=64", "batch_size=32"]


def make_project(root: Path) -> Path:
    """A separate MLSystem world: its own configs/, definitions/, output/ and queue/."""
    root.mkdir(parents=True, exist_ok=True)
    shutil.copytree(REPO / "configs", root / "configs")
    shutil.copytree(REPO / "definitions", root / "definitions",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    return root


def add_test_model(root: Path, name: str, config: str, cls: str) -> None:
    """Register the test-only model ``tests/fixtures/{name}`` in a project, with the CNN's digits adapter."""
    target = root / "definitions" / "models" / name
    shutil.copytree(REPO / "tests" / "fixtures" / name, target)
    shutil.copytree(REPO / "definitions" / "models" / "cnn" / "adapters", target / "adapters",
                    ignore=shutil.ignore_patterns("__pycache__"))
    reg_file = root / "configs" / "registry.json"
    reg = json.loads(reg_file.read_text())
    reg["models"][name] = {
        "path": f"definitions/models/{name}", "config": config, "class": cls,
        "adapters": {"digits": {"path": f"definitions/models/{name}/adapters/digits",
                                "config": "DigitsToCNNConfig", "class": "DigitsToCNN"}},
    }
    reg_file.write_text(json.dumps(reg, indent=2))


def add_probe_model(root: Path) -> None:
    """The `probe` model: records every training sample (exact-resume tests)."""
    add_test_model(root, "probe", "ProbeConfig", "Probe")


def add_echo_model(root: Path) -> None:
    """The `echo` model: a CNN with a speech model's ``inference`` method (cockpit tests)."""
    add_test_model(root, "echo", "EchoConfig", "Echo")


@pytest.fixture
def project(tmp_path, monkeypatch) -> Path:
    root = make_project(tmp_path / "proj")
    monkeypatch.setenv("MLSYSTEM_ROOT", str(root))
    monkeypatch.chdir(root)
    return root


def cli_env(root: Path, **extra: str) -> dict[str, str]:
    env = dict(os.environ, MLSYSTEM_ROOT=str(root), PYTHONUNBUFFERED="1", **extra)
    env.pop("PYTHONHASHSEED", None)
    return env


def run_cli(root: Path, module: str, *args: str, timeout: float = 300, env: dict | None = None,
            check: bool = False) -> subprocess.CompletedProcess:
    """Run ``python -m MODULE ARGS`` in the project like a user would."""
    proc = subprocess.run([sys.executable, "-m", module, *args], cwd=root, env=env or cli_env(root),
                          capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"{module} {args} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
    return proc


# -- cockpit tests (tests/test_gui_*.py) --------------------------------------------------------------
@pytest.fixture(scope="session")
def trained_template(tmp_path_factory) -> Path:
    """A project with a trained digits/cnn and a trained `echo` experiment (built once per session)."""
    from gui_fixtures import build_trained_template

    return build_trained_template(tmp_path_factory.mktemp("gui") / "template")


@pytest.fixture
def gui_project(trained_template, tmp_path, monkeypatch) -> Path:
    from gui_fixtures import copy_project

    from MLSystem.gui.auth import TOKEN_ENV

    root = copy_project(trained_template, tmp_path / "proj")
    monkeypatch.setenv("MLSYSTEM_ROOT", str(root))
    monkeypatch.delenv(TOKEN_ENV, raising=False)
    monkeypatch.chdir(root)
    return root


@pytest.fixture
async def user(gui_project, request):
    """NiceGUI's simulated User on the cockpit of ``gui_project`` (overrides the plugin's fixture,
    which would build the app before MLSYSTEM_ROOT is set)."""
    from nicegui.testing.general_fixtures import get_path_to_main_file
    from nicegui.testing.user_simulation import user_simulation

    async with user_simulation(main_file=get_path_to_main_file(request)) as simulated:
        yield simulated


def synth_corpus(out: Path, **kwargs):
    """The speech-corpus generator, imported when called: in-process tests of other projects may
    have swapped the ``definitions`` modules, and its worker pool pickles functions by module name.
    Unless a test names them, only espeak and the bundled real text: the same corpus on every machine,
    whichever Debian synthesizers are installed."""
    import importlib

    kwargs = {"engines": "espeak", "text_source": "bundled", **kwargs}
    return importlib.import_module("definitions.tools.ljspeech_synth").generate(out, **kwargs)


POLL_S = 0.05


def _polls(timeout: float):
    """Yield until ``timeout`` seconds have passed (the one polling schedule of the test suite)."""
    import time

    end = time.monotonic() + timeout
    while time.monotonic() < end:
        yield


def wait_for(pred, timeout: float = 60, what: str = "condition"):
    """Poll ``pred`` until it returns something truthy (returned); fail naming ``what`` after ``timeout`` s.
    ``pred`` may raise (e.g. an AssertionError that a process it watches died) to fail at once."""
    import time

    for _ in _polls(timeout):
        value = pred()
        if value:
            return value
        time.sleep(POLL_S)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


async def wait_for_async(pred, timeout: float = 60, what: str = "condition"):
    """:func:`wait_for` for async tests: waits without blocking the event loop (the app under test runs
    on it); ``pred`` may be a coroutine function (e.g. one that asks the API)."""
    import asyncio
    import inspect

    for _ in _polls(timeout):
        value = pred()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value
        await asyncio.sleep(POLL_S)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def job_record(root: Path, job_id: str) -> dict:
    """The job file of ``job_id`` as it is on disk, from whichever status folder holds it."""
    from MLSystem.jobs import Status
    for status in Status:
        p = root / "queue" / status.value / f"{job_id}.json"
        if p.exists():
            return json.loads(p.read_text())
    raise AssertionError(f"{job_id} is in no status folder")


def queue_folders(root: Path) -> dict[str, list[str]]:
    """Job ids per status folder (a job must be in exactly one)."""
    from MLSystem.jobs import Status
    return {s.value: sorted(p.stem for p in (root / "queue" / s.value).glob("*.json")) for s in Status}

