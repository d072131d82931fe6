"""Base classes for ``definitions/``: subclass these in ``datamodule.py``, ``model.py`` and ``adapter.py``.

``MLSystem.base.adapter`` is import-light; the data module and model bases import Lightning.
"""
