"""Image digests from a real OCI registry (Debian's docker-registry) holding images the tests push
through the distribution API: single manifests, multi-arch indexes, digests, basic auth, mirrors,
and each fault said as what it is. A small stdlib server stands in only for what docker-registry
cannot be made to do here (a Bearer token service, rate limiting)."""

from __future__ import annotations

import base64
import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from stackyard.adapters.image_registry import ImageResolver
from stackyard.core.images import parse_mirrors
from stackyard.exceptions import AccessDeniedError, NotFoundError, UnavailableError

from dev.oci_images import push_image, push_index
from tests.support.oci_registry import local_oci_registry


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    with local_oci_registry(tmp_path_factory.mktemp("images")) as host:
        yield host


@pytest.fixture(scope="module")
def private_registry(tmp_path_factory):
    with local_oci_registry(tmp_path_factory.mktemp("private"), users={"ci": "s3cret-pass"}) as host:
        yield host


BASIC = "Basic " + base64.b64encode(b"ci:s3cret-pass").decode()


def test_a_tag_resolves_to_the_digest_the_registry_serves(registry):
    digest = push_image(registry, "team/app", "1.0.0")
    resolved = ImageResolver().resolve(f"{registry}/team/app:1.0.0")
    assert (resolved.digest, resolved.registry, resolved.is_index) == (digest, registry, False)


def test_a_multi_arch_index_resolves_to_the_index_digest_not_one_platform(registry):
    digest = push_index(registry, "team/multi", "2.0")
    resolved = ImageResolver().resolve(f"{registry}/team/multi:2.0")
    assert resolved.digest == digest and resolved.is_index


def test_a_digest_reference_is_checked_to_exist(registry):
    digest = push_image(registry, "team/pinned", "1", content=b"pinned")
    assert ImageResolver().resolve(f"{registry}/team/pinned@{digest}").digest == digest
    with pytest.raises(NotFoundError, match="does not exist"):
        ImageResolver().resolve(f"{registry}/team/pinned@sha256:{'0' * 64}")


def test_a_missing_image_or_tag_is_not_found_naming_image_and_registry(registry):
    push_image(registry, "team/app", "1.0.0")
    with pytest.raises(NotFoundError, match=rf"image {registry}/team/app:9.9.9 does not exist in registry {registry}"):
        ImageResolver().resolve(f"{registry}/team/app:9.9.9")
    with pytest.raises(NotFoundError):
        ImageResolver().resolve(f"{registry}/nobody/here:1")


def test_a_moved_tag_gets_a_new_digest_from_a_new_resolver(registry):
    first = push_image(registry, "team/moving", "latest", content=b"one")
    assert ImageResolver().resolve(f"{registry}/team/moving").digest == first
    second = push_image(registry, "team/moving", "latest", content=b"two")
    assert ImageResolver().resolve(f"{registry}/team/moving").digest == second != first


def test_answers_are_cached_by_reference_for_the_life_of_a_resolver(registry):
    push_image(registry, "team/cached", "1")
    resolver = ImageResolver()
    refs = [f"{registry}/team/cached:1"] * 50
    results = resolver.resolve_all(refs)
    assert len(results) == 1 and resolver.requests == 1
    resolver.resolve(refs[0])
    assert resolver.requests == 1


def test_many_images_resolve_at_once_and_failures_come_back_in_place(registry):
    for n in range(8):
        push_image(registry, f"many/s{n}", "1", content=f"s{n}".encode())
    refs = [f"{registry}/many/s{n}:1" for n in range(8)] + [f"{registry}/many/absent:1"]
    results = ImageResolver(workers=8).resolve_all(refs)
    assert all(not isinstance(results[r], Exception) for r in refs[:-1])
    assert isinstance(results[refs[-1]], NotFoundError)


def test_a_private_registry_takes_credentials_and_says_when_there_are_none(private_registry):
    digest = push_image(private_registry, "private/app", "1", auth=BASIC)
    ok = ImageResolver(credentials=lambda host: ("ci", "s3cret-pass") if host == private_registry else None)
    assert ok.resolve(f"{private_registry}/private/app:1").digest == digest
    with pytest.raises(AccessDeniedError, match="needs credentials and none are configured"):
        ImageResolver().resolve(f"{private_registry}/private/app:1")
    with pytest.raises(AccessDeniedError, match="denied access") as exc:
        ImageResolver(credentials=lambda host: ("ci", "wrong-password")).resolve(f"{private_registry}/private/app:1")
    assert "wrong-password" not in str(exc.value)


def test_a_mirror_answers_for_a_public_registry_and_is_said(registry):
    digest = push_image(registry, "hub/library/busybox", "1.36", content=b"mirrored")
    resolver = ImageResolver(mirrors=parse_mirrors(f"docker.io={registry}/hub"))
    resolved = resolver.resolve("busybox:1.36")
    assert (resolved.reference, resolved.digest, resolved.mirror) == ("busybox:1.36", digest, registry)
    with pytest.raises(NotFoundError, match=rf"\(mirror of docker.io\)"):
        resolver.resolve("busybox:0.0-absent")


def test_a_registry_that_is_down_is_unavailable_not_missing():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(UnavailableError, match=rf"could not reach registry 127.0.0.1:{port}"):
        ImageResolver(timeout=2).resolve(f"127.0.0.1:{port}/team/app:1")


class _TokenRegistry:
    """Just the parts of a registry fronted by a token service, plus rate limiting."""

    def __init__(self) -> None:
        outer = self
        self.token_requests: list[str] = []
        self.rate_limited = False

        class Handler(BaseHTTPRequestHandler):
            def _answer(self, head: bool) -> None:
                host = f"127.0.0.1:{outer.port}"
                if self.path.startswith("/token"):
                    outer.token_requests.append(self.headers.get("Authorization", ""))
                    body = json.dumps({"token": "tok-123"}).encode()
                    self.send_response(200)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                    return
                if outer.rate_limited:
                    self.send_response(429)
                    self.send_header("Retry-After", "30")
                    self.end_headers()
                    return
                if self.headers.get("Authorization") != "Bearer tok-123":
                    self.send_response(401)
                    self.send_header("WWW-Authenticate",
                                     f'Bearer realm="http://{host}/token",service="{host}",scope="repository:a/b:pull"')
                    self.end_headers()
                    return
                self.send_response(200)
                self.send_header("Content-Type", "application/vnd.oci.image.manifest.v1+json")
                self.send_header("Docker-Content-Digest", "sha256:" + "c" * 64)
                self.end_headers()

            def do_HEAD(self):  # noqa: N802
                self._answer(True)

            def do_GET(self):  # noqa: N802
                self._answer(False)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def token_registry():
    r = _TokenRegistry()
    yield r
    r.server.shutdown()


def test_the_bearer_token_flow_gets_a_token_once_per_repository(token_registry):
    resolver = ImageResolver(credentials=lambda host: ("robot", "pw-12345"))
    ref = f"127.0.0.1:{token_registry.port}/a/b:1"
    assert resolver.resolve(ref).digest == "sha256:" + "c" * 64
    assert resolver.resolve(f"127.0.0.1:{token_registry.port}/a/b:2").digest
    assert token_registry.token_requests == ["Basic " + base64.b64encode(b"robot:pw-12345").decode()]


def test_rate_limiting_is_said_with_its_retry_after(token_registry):
    token_registry.rate_limited = True
    with pytest.raises(UnavailableError, match=r"rate limiting \(HTTP 429, retry after 30 s\)"):
        ImageResolver().resolve(f"127.0.0.1:{token_registry.port}/a/b:1")
