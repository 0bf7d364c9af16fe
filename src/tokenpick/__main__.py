"""tokenpick's command line: ``python -m tokenpick {bench,demo} [options]``.

It only dispatches: each subcommand's options and work live in its module
(`tokenpick.bench`, `tokenpick.demo`), which also runs on its own via ``main``.
"""

import argparse
import sys

from . import bench, demo
from ._version import __version__

COMMANDS = {"bench": bench, "demo": demo}


def build_parser():
    """The argument parser, with one subcommand per module of `COMMANDS`."""
    parser = argparse.ArgumentParser(
        prog="python -m tokenpick",
        description="Fast, verified next-token sampling over float32 logits.",
    )
    parser.add_argument("--version", action="version", version=f"tokenpick {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="{bench,demo}")
    for name, module in COMMANDS.items():
        sub = commands.add_parser(
            name,
            help=module.SUMMARY,
            description=module.__doc__,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        module.configure_parser(sub)
        sub.set_defaults(run=module.run)
    return parser


def main(argv=None):
    """Parse `argv` (default: ``sys.argv[1:]``), run the subcommand, return its exit status."""
    args = build_parser().parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
