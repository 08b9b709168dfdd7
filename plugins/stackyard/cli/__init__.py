"""``stackyard``: the command line for CI and terminals.

Each command group is a module of this package with a ``register(subparsers)`` function; the
parser is assembled from every such module, so a new group is a new file.

Exit codes, the same for every command (README, "Exit codes"):

- 0: ok — done, or the verdict was yes (promoted, the chart passes);
- 1: the verdict was no — refused input (:class:`InputError`, one line naming what is wrong), a
  conflict, a rejected candidate, a chart that would not publish;
- 2: could not ask — a tool, service or credential problem (any other :class:`StackyardError`),
  a time-out, or a usage error (argparse).
"""

from __future__ import annotations

import argparse
import importlib
import logging
import pkgutil
import sys
from collections.abc import Sequence

from stackyard.exceptions import ConflictError, InputError, StackyardError
from stackyard.settings import Settings


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="stackyard", description="Kubernetes deployment pipeline on Airflow.")
    parser.add_argument("-v", "--verbose", action="store_true", help="log every tool command and its output")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if not module.name.startswith("_"):
            importlib.import_module(f"{__name__}.{module.name}").register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING, stream=sys.stderr, format="%(name)s: %(message)s"
    )
    try:
        return args.func(args, Settings.from_env())
    except (InputError, ConflictError) as exc:
        print(f"stackyard: {exc}", file=sys.stderr)
        return 1
    except StackyardError as exc:
        print(f"stackyard: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
