"""One module per cockpit page; each has ``register(cockpit)`` that declares its ``@ui.page``."""
