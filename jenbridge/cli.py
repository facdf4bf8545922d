"""The `jenbridge` command.

Each subcommand is a row in COMMANDS: its arguments are declared here (cheap), and the module
that does the work is imported only when the subcommand runs, so `jenbridge --help` stays fast
and the serving commands never import torch.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import sys

# name -> (help, module). The module defines `add_arguments(parser)` and `run(args) -> int`, and
# keeps its top-level imports light (argparse, pathlib): heavy imports go inside `run`.
COMMANDS: dict[str, tuple[str, str]] = {
    "serve": ("run the OSC daemon a DAW talks to (docs/osc.md)", "jenbridge.commands.serve"),
    "client": ("send one request to a running daemon and wait for its reply (docs/daw.md)",
               "jenbridge.commands.client"),
    "generate": ("make music from a text prompt (text-to-music)", "jenbridge.commands.generate"),
    "inpaint": ("regenerate regions of an audio file, keeping the rest bit-exact",
                "jenbridge.commands.generate"),
    "continue": ("append music after an audio file", "jenbridge.commands.generate"),
    "extend": ("prepend music before an audio file", "jenbridge.commands.generate"),
    "vary": ("make a variation of an audio file", "jenbridge.commands.generate"),
    "presets": ("list, show and check presets (presets/*.yaml)", "jenbridge.commands.presets"),
    "configs": ("validate model configs and show their sizes", "jenbridge.commands.configs"),
    "data": ("build the built-in dataset, check a dataset", "jenbridge.commands.data"),
    "train": ("train the autoencoder or the diffusion model", "jenbridge.commands.train"),
    "export": ("export trained (or random) weights to an ONNX model bundle",
               "jenbridge.commands.export"),
    "eval": ("evaluate a model bundle on held-out data (docs/eval.md)", "jenbridge.commands.eval"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="jenbridge",
        description="Local JEN-1 music engine: text-to-music, inpainting and continuation "
        "for your DAW, served over OSC.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (help_, module) in COMMANDS.items():
        if importlib.util.find_spec(module) is None:  # a command whose module is not installed
            continue
        importlib.import_module(module).add_arguments(sub.add_parser(name, help=help_,
                                                                     description=help_))
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.command:
        parser.print_help()
        return 2
    run = importlib.import_module(COMMANDS[args.command][1]).run
    try:
        return int(run(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except ValueError as err:  # user mistakes (ConfigError is a ValueError): message, exit 2
        print(f"jenbridge {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
