"""Push small images into a real OCI registry through the distribution API (no Docker engine):
a config blob, one layer, a manifest under a tag — or a multi-arch index of two such manifests."""

from __future__ import annotations

import hashlib
import json
import urllib.request

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _call(method: str, url: str, data: bytes | None = None, headers: dict | None = None):
    req = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    with urllib.request.urlopen(req, timeout=10) as resp:
        return resp.status, resp.headers


def push_blob(registry: str, repo: str, data: bytes, auth: str | None = None) -> str:
    digest = _digest(data)
    headers = {"Authorization": auth} if auth else {}
    _, h = _call("POST", f"http://{registry}/v2/{repo}/blobs/uploads/", b"", headers)
    location = h["Location"]
    if location.startswith("/"):
        location = f"http://{registry}{location}"
    sep = "&" if "?" in location else "?"
    _call("PUT", f"{location}{sep}digest={digest}", data,
          {**headers, "Content-Type": "application/octet-stream"})
    return digest


def push_manifest(registry: str, repo: str, reference: str, manifest: dict, media_type: str,
                  auth: str | None = None) -> str:
    body = json.dumps(manifest, separators=(",", ":")).encode()
    headers = {"Content-Type": media_type, **({"Authorization": auth} if auth else {})}
    _call("PUT", f"http://{registry}/v2/{repo}/manifests/{reference}", body, headers)
    return _digest(body)


def push_image(registry: str, repo: str, tag: str, *, content: bytes = b"hello", arch: str = "amd64",
               auth: str | None = None) -> str:
    """An OCI image manifest under ``repo:tag``; returns its digest."""
    config = json.dumps({"architecture": arch, "os": "linux", "rootfs": {"type": "layers", "diff_ids": []}}).encode()
    config_digest = push_blob(registry, repo, config, auth)
    layer_digest = push_blob(registry, repo, content, auth)
    manifest = {
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest, "size": len(config)},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": layer_digest, "size": len(content)}],
    }
    return push_manifest(registry, repo, tag, manifest, OCI_MANIFEST, auth)


def push_index(registry: str, repo: str, tag: str, *, auth: str | None = None) -> str:
    """A multi-arch index (amd64 + arm64) under ``repo:tag``; returns the index's digest."""
    entries = []
    for arch in ("amd64", "arm64"):
        digest = push_image(registry, repo, f"{tag}-{arch}", content=f"{repo}-{arch}".encode(), arch=arch, auth=auth)
        entries.append({"mediaType": OCI_MANIFEST, "digest": digest, "size": 0,
                        "platform": {"architecture": arch, "os": "linux"}})
    # sizes must be real for a strict registry: fetch them back
    for entry in entries:
        req = urllib.request.Request(f"http://{registry}/v2/{repo}/manifests/{entry['digest']}", method="HEAD",
                                     headers={"Accept": OCI_MANIFEST, **({"Authorization": auth} if auth else {})})
        with urllib.request.urlopen(req, timeout=10) as resp:
            entry["size"] = int(resp.headers["Content-Length"])
    return push_manifest(registry, repo, tag, {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries},
                         OCI_INDEX, auth)
