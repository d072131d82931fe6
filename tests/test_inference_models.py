"""Which models can transcribe is read from their source, so the inference page answers at once
(importing every model costs torch + Lightning: 6-13 s); only undecidable classes are imported."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from conftest import add_echo_model, cli_env

PROBE = """
import json, sys, time
t0 = time.perf_counter()
from MLSystem.gui.inference import find_inference_models
from MLSystem.paths import ProjectPaths
found, undecided = find_inference_models(ProjectPaths.discover(), import_code=False)
print(json.dumps({"found": found, "undecided": undecided, "seconds": time.perf_counter() - t0,
                  "torch": "torch" in sys.modules}))
"""


def test_speech_models_are_found_without_importing_model_code(project: Path) -> None:
    add_echo_model(project)
    # A class that inherits inference() from another module: only an import can tell.
    folder = project / "definitions" / "models" / "echo2"
    folder.mkdir()
    (folder / "config.py").write_text((project / "definitions/models/echo/config.py").read_text())
    (folder / "model.py").write_text("from definitions.models.echo.model import Echo\n\n\nclass Echo2(Echo):\n    pass\n")
    reg_file = project / "configs" / "registry.json"
    reg = json.loads(reg_file.read_text())
    reg["models"]["echo2"] = {**reg["models"]["echo"], "path": "definitions/models/echo2", "class": "Echo2"}
    reg_file.write_text(json.dumps(reg))

    out = subprocess.run([sys.executable, "-c", PROBE], cwd=project, env=cli_env(project), capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert result["found"] == ["conformer", "conformer_full", "echo"] and result["undecided"] == ["echo2"], result
    assert not result["torch"], "deciding from the source must not import torch"

    from MLSystem.gui.inference import find_inference_models
    from MLSystem.paths import ProjectPaths

    assert find_inference_models(ProjectPaths.discover(project))[0] == ["conformer", "conformer_full", "echo", "echo2"]
