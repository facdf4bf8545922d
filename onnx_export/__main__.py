"""`python -m onnx_export ...`: the same command as `jenbridge export ...`."""

from __future__ import annotations

import argparse
import sys

from jenbridge.commands.export import HELP, add_arguments, run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m onnx_export", description=HELP)
    add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        return run(args)
    except ValueError as err:  # user mistakes (BundleError, ConfigError are ValueErrors)
        print(f"onnx_export: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
