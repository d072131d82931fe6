"""The cockpit: a NiceGUI web app over the same modules the CLI uses.

``app.build()`` wires the pages (one module each) and the REST API (``api``) onto NiceGUI's
FastAPI app; ``MLSystem.gui_start`` runs it. Modules without ``nicegui`` imports (``tail``,
``series``, ``index``, ``inference``) hold the file reading the pages and the API share.
"""
