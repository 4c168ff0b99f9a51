"""Settings modules: ``base`` (shared), ``demo``, ``test`` and ``production``.

The environment is read in exactly one place, :mod:`pesarail.settings.env`.
"""
