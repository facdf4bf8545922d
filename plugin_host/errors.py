"""The two errors of `plugin_host`: a wrong chain (the user's to fix) and a failed run."""

from __future__ import annotations


class ChainError(ValueError):
    """A chain spec is wrong: unknown effect, argument or plugin parameter, a bad value, a
    missing file. The message starts with where: `file.yaml: chain[2] (Reverb): ...`."""


class PluginError(RuntimeError):
    """Processing failed: a plugin process crashed, hung (killed after its timeout) or could not
    start, or an effect produced non-finite audio. The message names the chain item; the
    process that raised it is unharmed and the next chain works."""
