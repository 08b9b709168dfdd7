"""kube sandbox: a Kubernetes API emulator for tests and the zero-setup demo.

``from kube_sandbox import Sandbox``; see README.md for what it emulates and what it does not.
"""

from .faults import Faults
from .rules import Rules
from .sandbox import Sandbox

__all__ = ["Faults", "Rules", "Sandbox"]
