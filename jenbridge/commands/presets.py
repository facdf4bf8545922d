"""`jenbridge presets [list | show NAME | check [FILE...]]`: the presets the daemon and CLI apply.

  jenbridge presets                 name, task and description of every preset found
  jenbridge presets show drum_fill  one preset's resolved fields (defaults filled in)
  jenbridge presets check           validate every preset (or the given files); exit 1 on errors
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("action", nargs="?", default="list", choices=("list", "show", "check"))
    p.add_argument("names", nargs="*", metavar="NAME|FILE",
                   help="show: a preset name; check: preset files (default: every preset)")
    p.add_argument("--presets-dir", type=Path, action="append", default=[], metavar="DIR",
                   help="another folder to look for presets in")


def run(args: argparse.Namespace) -> int:
    from jenbridge.presets import PresetError, PresetLibrary, load_preset_file

    library = PresetLibrary(args.presets_dir)
    if args.action == "list":
        good, bad = library.check_all()
        width = max((len(p.name) for p in good), default=4)
        for p in good:
            print(f"{p.name:<{width}}  {p.task:<8}  {p.description}")
        for problem in bad:
            print(f"broken: {problem}", file=sys.stderr)
        return 1 if bad else 0
    if args.action == "show":
        if len(args.names) != 1:
            raise ValueError("presets show takes one preset name")
        import yaml

        preset = library.get(args.names[0])
        print(yaml.safe_dump(preset.model_dump(exclude={"name"}), sort_keys=False,
                             allow_unicode=True), end="")
        return 0
    problems = []
    if args.names:
        for name in args.names:
            try:
                load_preset_file(Path(name))
            except PresetError as err:
                problems.append(str(err))
        count = len(args.names)
    else:
        good, problems = library.check_all()
        count = len(good) + len(problems)
    for problem in problems:
        print(problem, file=sys.stderr)
    print(f"{count - len(problems)} of {count} presets valid")
    return 1 if problems else 0
