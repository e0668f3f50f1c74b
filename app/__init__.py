"""The composition root: settings, the command line, and all the I/O around the core.

``schemas/`` ← ``rules/`` ← ``agents/`` ← ``app/``: only this package may import all of
them, and no other package imports it. One subpackage per job: ``cli``, ``worker``,
``kafka``, ``backtest``, ``synthetic``, ``demo``; ``settings.py`` is read once at start-up
and passed explicitly.
"""

#: Nothing at the top: each subpackage declares its own public names.
__all__: list[str] = []
