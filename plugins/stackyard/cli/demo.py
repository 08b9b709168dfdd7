"""``stackyard demo``: what ``make demo`` runs (see :mod:`stackyard.demo`)."""

from __future__ import annotations

import argparse

from stackyard.settings import Settings


def register(sub: argparse._SubParsersAction) -> None:
    sub.add_parser("demo", help="the end-to-end L3 gate demo `make demo` runs").set_defaults(func=demo_command)


def demo_command(args: argparse.Namespace, settings: Settings) -> int:
    from stackyard.demo import run_demo

    return run_demo(settings)
