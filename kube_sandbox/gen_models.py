"""Regenerate ``data/models.json`` from the kubernetes Python client's generated code.

Developer tool, not imported by the sandbox at run time (the sandbox depends on the
standard library and PyYAML only).  The kubernetes client is a faithful, versioned copy of
the API: its models' ``openapi_types``/``attribute_map`` give every object schema, and its
API classes give every REST path with its method and response model, from which we derive
the resource catalogue (group, version, kind, plural, scope, verbs, subresources).  We keep
a compact form of both:

    {"models": {"V1Container": {"name": "str", "env": "list[V1EnvVar]", ...}},
     "resources": [{"gv": "apps/v1", "kind": "Deployment", "plural": "deployments",
                    "namespaced": true, "model": "V1Deployment", "verbs": [...],
                    "subresources": {"status": [...], "scale": [...]}}]}

Only stable versions (``v1``, ``v2``) are kept: what a 1.35 cluster serves by default.

Run:  python -m kube_sandbox.gen_models   (needs ``pip install kubernetes``)
"""

from __future__ import annotations

import inspect
import json
import re
from pathlib import Path

OUT = Path(__file__).with_name("data") / "models.json"
_CALL = re.compile(r"response_types_map = \{\s*(?:20[01]: \"(?P<model>\w+)\",)?.*?call_api\(\s*'(?P<path>[^']+)', "
                   r"'(?P<method>\w+)'", re.S)
_PATH = re.compile(r"^/apis?/(?:(?P<group>[^/]+)/)?(?P<version>v\d+)/(?P<ns>namespaces/\{namespace\}/)?"
                   r"(?P<plural>[a-z0-9]+)(?P<item>/\{name\})?(?:/(?P<sub>[a-z]+))?$")
_STABLE = re.compile(r"^v\d+$")
_KIND = re.compile(r"^(?:[A-Z][a-z]+)*?V\d+(?:alpha\d+|beta\d+)?(?=[A-Z])")
COLLECTION_VERBS = {"GET": ("list", "watch"), "POST": ("create",), "DELETE": ("deletecollection",)}
ITEM_VERBS = {"GET": ("get",), "PUT": ("update",), "PATCH": ("patch",), "DELETE": ("delete",)}
SUB_VERBS = {"GET": "get", "PUT": "update", "PATCH": "patch", "POST": "create", "DELETE": "delete"}


def resources_from_api_sources(sources: list[str]) -> list[dict]:
    """The resource catalogue from the text of the client's ``*_api.py`` modules (pure)."""
    table: dict[tuple[str, str], dict] = {}
    for text in sources:
        for m in _CALL.finditer(text):
            p = _PATH.match(m["path"])
            if not p or p["plural"] == "watch" or not _STABLE.match(p["version"]):
                continue
            group, version, plural = p["group"] or "", p["version"], p["plural"]
            gv = f"{group}/{version}" if group else version
            r = table.setdefault((gv, plural), {"gv": gv, "plural": plural, "namespaced": False, "kind": "",
                                                "model": "", "verbs": [], "subresources": {}})
            if p["ns"]:
                r["namespaced"] = True
            method = m["method"]
            if p["sub"]:
                verbs = r["subresources"].setdefault(p["sub"], [])
                v = SUB_VERBS.get(method)
                if v and v not in verbs:
                    verbs.append(v)
                continue
            for v in (ITEM_VERBS if p["item"] else COLLECTION_VERBS).get(method, ()):
                if v not in r["verbs"]:
                    r["verbs"].append(v)
            model = m["model"] or ""
            if model and not model.endswith("List") and model != "V1Status" and \
                    (p["item"] or not r["model"]):
                r["model"] = model
                r["kind"] = _KIND.sub("", model)
    out = []
    for r in table.values():
        if not r["kind"]:  # create-only kinds (reviews) have no GET: the POST's response model names them
            continue
        r["verbs"].sort()
        for v in r["subresources"].values():
            v.sort()
        out.append(r)
    return sorted(out, key=lambda r: (r["gv"], r["plural"]))


def main() -> None:
    import kubernetes
    import kubernetes.client.api as api_pkg
    import kubernetes.client.models as models

    out: dict[str, dict[str, str]] = {}
    for name, cls in inspect.getmembers(models, inspect.isclass):
        types = getattr(cls, "openapi_types", None)
        attrs = getattr(cls, "attribute_map", None)
        if not isinstance(types, dict) or not isinstance(attrs, dict):
            continue
        out[name] = {attrs[k]: v for k, v in sorted(types.items())}
    sources = [p.read_text() for p in sorted(Path(api_pkg.__file__).parent.glob("*_api.py"))]
    resources = resources_from_api_sources(sources)
    OUT.parent.mkdir(exist_ok=True)
    payload = {"source": f"kubernetes-python-client {kubernetes.__version__}", "models": out,
               "resources": resources}
    OUT.write_text(json.dumps(payload, separators=(",", ":"), sort_keys=True) + "\n")
    print(f"wrote {len(out)} models and {len(resources)} resources to {OUT}")


if __name__ == "__main__":
    main()
