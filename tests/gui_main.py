"""NiceGUI main file of the cockpit tests (pytest ini ``main_file``): the cockpit of $MLSYSTEM_ROOT,
with the token of $MLSYSTEM_GUI_TOKEN when set."""

import os

from nicegui import ui

from MLSystem.gui.app import RUN_OPTIONS, build
from MLSystem.gui.auth import TOKEN_ENV
from MLSystem.paths import ProjectPaths

# NiceGUI's simulated User sends ``Host: test``.
build(ProjectPaths.discover(), os.environ.get(TOKEN_ENV) or None, allow_hosts=["test"])
ui.run(**RUN_OPTIONS)
