"""``stackyard demo``: what ``make demo`` runs, from a checkout.

The demo is dev-only code (``dev/demo.py``, outside the shipped package): it is looked up at run
time, so the production image, which has no ``dev/``, answers with how to run it instead.
"""

from __future__ import annotations

import argparse
import importlib

from stackyard.exceptions import InputError
from stackyard.settings import Settings

DEMO_MODULE = "dev.demo"


def register(sub: argparse._SubParsersAction) -> None:
    sub.add_parser("demo", help="the end-to-end L3 gate demo `make demo` runs").set_defaults(func=demo_command)


def demo_command(args: argparse.Namespace, settings: Settings) -> int:
    try:
        demo = importlib.import_module(DEMO_MODULE)
    except ModuleNotFoundError as exc:
        if exc.name not in ("dev", DEMO_MODULE):
            raise
        raise InputError("the demo is a dev tool: run `make demo` from a stackyard checkout") from None
    return demo.run_demo(settings)
