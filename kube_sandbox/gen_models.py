"""Regenerate ``data/models.json`` from the kubernetes Python client's generated models.

Developer tool, not imported by the sandbox at run time (the sandbox depends on the
standard library and PyYAML only).  The kubernetes client's ``openapi_types`` and
``attribute_map`` are a faithful, versioned copy of the API's object schemas; we keep
a compact form of them: ``{"V1Container": {"name": "str", "env": "list[V1EnvVar]", ...}}``
keyed by JSON field name.

Run:  python -m kube_sandbox.gen_models   (needs ``pip install kubernetes``)
"""

from __future__ import annotations

import inspect
import json
from pathlib import Path

OUT = Path(__file__).with_name("data") / "models.json"


def main() -> None:
    import kubernetes
    import kubernetes.client.models as models

    out: dict[str, dict[str, str]] = {}
    for name, cls in inspect.getmembers(models, inspect.isclass):
        types = getattr(cls, "openapi_types", None)
        attrs = getattr(cls, "attribute_map", None)
        if not isinstance(types, dict) or not isinstance(attrs, dict):
            continue
        out[name] = {attrs[k]: v for k, v in sorted(types.items())}
    OUT.parent.mkdir(exist_ok=True)
    payload = {"source": f"kubernetes-python-client {kubernetes.__version__}", "models": out}
    OUT.write_text(json.dumps(payload, separators=(",", ":"), sort_keys=True) + "\n")
    print(f"wrote {len(out)} models to {OUT}")


if __name__ == "__main__":
    main()
