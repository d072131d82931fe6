"""MLSystem: deterministic deep-learning experiments on Hydra + PyTorch Lightning.

Importing the package is cheap on purpose (no torch, no Lightning): the CLI, the queue and the
cockpit import it on paths that must stay fast.
"""

__version__ = "0.1.0"
