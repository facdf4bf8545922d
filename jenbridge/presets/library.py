"""Finding presets by name: the shipped `presets/` folder, the user's folder, and configured ones.

Search order (a later folder's preset of the same name wins, so a user can shadow a shipped one):
  1. the shipped presets (`presets/` next to the package in a source checkout),
  2. `~/.config/jenbridge/presets` (or `$XDG_CONFIG_HOME/jenbridge/presets`),
  3. the folders given to `PresetLibrary` (the daemon's `presets_dirs`, `--presets DIR`).
A file is re-read when it changes on disk, so a sound designer can edit a preset while the
daemon runs; a broken edit is reported on use (and by `jenbridge presets check`), the other
presets keep working.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from pathlib import Path

from jenbridge.config import ConfigError, read_yaml
from jenbridge.presets.schema import Preset, PresetError, parse_preset

SHIPPED_DIR = Path(__file__).resolve().parent.parent.parent / "presets"
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


def user_dir() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "jenbridge" / "presets"


def load_preset_file(path: Path) -> Preset:
    """Read and validate one preset file (its name is the file's stem)."""
    name = path.stem
    if not NAME.fullmatch(name):
        raise PresetError(f"{path}: a preset's file name must be letters, digits, '_', '-' or "
                          "'.' (at most 64)")
    try:
        data = read_yaml(path)
    except (ConfigError, OSError) as err:
        raise PresetError(str(err)) from None
    return parse_preset(data, name, str(path))


class PresetLibrary:
    """The presets a daemon or the CLI can apply by name."""

    def __init__(self, folders: Iterable[Path] = (), shipped: bool = True,
                 user: bool = True) -> None:
        dirs = ([SHIPPED_DIR] if shipped else []) + ([user_dir()] if user else [])
        self.folders = tuple(dirs + [Path(f).expanduser() for f in folders])
        self._cache: dict[Path, tuple[float, Preset]] = {}

    def paths(self) -> dict[str, Path]:
        """name -> file, later folders shadowing earlier ones."""
        found: dict[str, Path] = {}
        for folder in self.folders:
            if folder.is_dir():
                for path in sorted(folder.glob("*.yaml")):
                    found[path.stem] = path
        return found

    def names(self) -> list[str]:
        return sorted(self.paths())

    def get(self, name: str) -> Preset:
        """The preset called `name`; PresetError if there is none or its file is broken."""
        if not isinstance(name, str) or not NAME.fullmatch(name):
            raise PresetError(f"preset name {name!r} is not valid")
        path = self.paths().get(name)
        if path is None:
            known = ", ".join(self.names()) or "none"
            raise PresetError(f"unknown preset {name!r} (known: {known})")
        mtime = path.stat().st_mtime
        hit = self._cache.get(path)
        if hit is not None and hit[0] == mtime:
            return hit[1]
        preset = load_preset_file(path)
        self._cache[path] = (mtime, preset)
        return preset

    def check_all(self) -> tuple[list[Preset], list[str]]:
        """Every preset loaded: (the good ones, one error message per broken file)."""
        good, bad = [], []
        for name in self.names():
            try:
                good.append(self.get(name))
            except PresetError as err:
                bad.append(str(err))
        return good, bad
