"""Image digests from OCI registries, through the distribution API (``/v2/<name>/manifests/<ref>``).

One HEAD per image (a GET only when a registry omits ``Docker-Content-Digest``), the token flow
registries use (``401`` + ``WWW-Authenticate: Bearer realm=…`` → a token from the realm, with
basic credentials when there are any), basic auth, and each failure said as what it is: not
found, access denied, rate limited, unreachable. Credentials come from a callable (``host`` →
``(user, password)`` or ``None``) that the Airflow layer builds from connections (ECR tokens from
the AWS connection); they are never logged.

Many images are resolved at once on a thread pool, and every answer is cached by reference for
the life of the resolver (one publish, one deploy check), so an image used by 300 charts is asked
for once.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from stackyard.core.images import ImageRef, Mirror, parse_image
from stackyard.exceptions import AccessDeniedError, NotFoundError, UnavailableError

#: What we accept, most specific first: a multi-arch index resolves to the index's own digest
#: (what a runtime pulls by that tag), never to one platform's manifest.
MANIFEST_TYPES = (
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
)
INDEX_TYPES = MANIFEST_TYPES[:2]
_CHALLENGE = re.compile(r'(\w+)="([^"]*)"')

Credentials = Callable[[str], "tuple[str, str] | None"]


@dataclass(frozen=True)
class Resolved:
    """What a reference resolved to."""

    reference: str  # as the chart wrote it
    digest: str
    media_type: str
    registry: str  # the host that answered (a mirror's, when mirrored)
    mirror: str | None = None

    @property
    def is_index(self) -> bool:
        return self.media_type in INDEX_TYPES


class ImageResolver:
    """Resolves references to digests; thread-safe; caches by reference."""

    def __init__(self, *, credentials: Credentials | None = None, mirrors: Mapping[str, Mirror] | None = None,
                 plain_http: Iterable[str] = (), timeout: float = 10.0, workers: int = 16) -> None:
        self._credentials = credentials or (lambda host: None)
        self._mirrors = dict(mirrors or {})
        self._plain_http = set(plain_http)
        self._timeout = timeout
        self._workers = workers
        self._cache: dict[str, Resolved] = {}
        self._tokens: dict[tuple[str, str], str] = {}
        self._lock = threading.Lock()
        self.requests = 0  # registry round trips, for the benchmark and tests

    # --- public ----------------------------------------------------------------------------

    def resolve(self, reference: str) -> Resolved:
        with self._lock:
            hit = self._cache.get(reference)
        if hit is not None:
            return hit
        result = self._resolve(reference)
        with self._lock:
            self._cache[reference] = result
        return result

    def resolve_all(self, references: Iterable[str]) -> dict[str, Resolved | Exception]:
        """Every distinct reference at once; a failure is returned in its place, not raised."""
        unique = list(dict.fromkeys(references))

        def one(ref: str) -> Resolved | Exception:
            try:
                return self.resolve(ref)
            except (AccessDeniedError, NotFoundError, UnavailableError) as exc:
                return exc

        if len(unique) <= 1:
            return {ref: one(ref) for ref in unique}
        with ThreadPoolExecutor(max_workers=min(self._workers, len(unique))) as pool:
            return dict(zip(unique, pool.map(one, unique)))

    # --- one reference ---------------------------------------------------------------------

    def _resolve(self, reference: str) -> Resolved:
        ref = parse_image(reference)
        mirror = self._mirrors.get(ref.domain)
        target = mirror.locate(ref) if mirror else ref
        host = target.api_host
        where = f"registry {host}" + (f" (mirror of {ref.domain})" if mirror else "")
        url = f"{self._scheme(host)}://{host}/v2/{target.path}/manifests/{urllib.parse.quote(target.lookup, safe=':')}"
        status, headers, body = self._request("HEAD", url, target, where, reference)
        digest = headers.get("docker-content-digest")
        media_type = (headers.get("content-type") or "").split(";")[0].strip()
        if not digest:
            status, headers, body = self._request("GET", url, target, where, reference)
            digest = "sha256:" + hashlib.sha256(body).hexdigest()
            media_type = (headers.get("content-type") or "").split(";")[0].strip() or _media_type_of(body)
        if ref.digest and digest != ref.digest:
            raise NotFoundError(f"image {reference}: {where} answers with digest {digest}, not the pinned {ref.digest}")
        return Resolved(reference, digest, media_type, host, mirror.host if mirror else None)

    def _scheme(self, host: str) -> str:
        hostname = host.rsplit(":", 1)[0] if not host.startswith("[") else host.split("]")[0] + "]"
        loopback = hostname in ("localhost", "[::1]") or hostname.startswith("127.")
        return "http" if loopback or host in self._plain_http else "https"

    def _request(self, method: str, url: str, ref: ImageRef, where: str, reference: str,
                 ) -> tuple[int, Mapping[str, str], bytes]:
        headers = {"Accept": ", ".join(MANIFEST_TYPES)}
        token = self._tokens.get((ref.api_host, ref.path))
        if token:
            headers["Authorization"] = token
        for attempt in range(2):
            try:
                return self._send(method, url, headers)
            except urllib.error.HTTPError as exc:
                if exc.code == 401 and attempt == 0:
                    headers["Authorization"] = self._authorize(exc.headers.get("WWW-Authenticate", ""), ref, where)
                    self._tokens[(ref.api_host, ref.path)] = headers["Authorization"]
                    continue
                raise self._error(exc, where, reference) from None
            except (urllib.error.URLError, OSError) as exc:
                reason = getattr(exc, "reason", exc)
                raise UnavailableError(f"image {reference}: could not reach {where}: {reason}") from None
        raise AccessDeniedError(f"image {reference}: {where} refused the credentials")  # pragma: no cover

    def _send(self, method: str, url: str, headers: Mapping[str, str]) -> tuple[int, Mapping[str, str], bytes]:
        with self._lock:
            self.requests += 1
        request = urllib.request.Request(url, method=method, headers=dict(headers))
        with urllib.request.urlopen(request, timeout=self._timeout) as response:
            body = response.read() if method == "GET" else b""
            return response.status, {k.lower(): v for k, v in response.headers.items()}, body

    def _authorize(self, challenge: str, ref: ImageRef, where: str) -> str:
        scheme, _, params = challenge.partition(" ")
        creds = self._credentials(ref.api_host)
        if scheme.lower() == "basic":
            if creds is None:
                raise AccessDeniedError(f"image {ref}: {where} needs credentials and none are configured "
                                        f"(an Airflow connection for {ref.api_host}, see docs/images.md)")
            return "Basic " + base64.b64encode(f"{creds[0]}:{creds[1]}".encode()).decode()
        if scheme.lower() != "bearer":
            raise AccessDeniedError(f"image {ref}: {where} asks for unsupported authentication {scheme!r}")
        fields = dict(_CHALLENGE.findall(params))
        realm = fields.get("realm")
        if not realm:
            raise AccessDeniedError(f"image {ref}: {where} sent a Bearer challenge without a realm")
        query = {k: v for k, v in (("service", fields.get("service")),
                                   ("scope", fields.get("scope") or f"repository:{ref.path}:pull")) if v}
        request = urllib.request.Request(f"{realm}?{urllib.parse.urlencode(query)}")
        if creds is not None:
            request.add_header("Authorization", "Basic " + base64.b64encode(f"{creds[0]}:{creds[1]}".encode()).decode())
        try:
            with self._lock:
                self.requests += 1
            with urllib.request.urlopen(request, timeout=self._timeout) as response:
                data = json.loads(response.read() or b"{}")
        except urllib.error.HTTPError as exc:
            raise AccessDeniedError(f"image {ref}: the token service of {where} refused "
                                    f"{'the credentials' if creds else 'anonymous access'} (HTTP {exc.code})") from None
        except (urllib.error.URLError, OSError, ValueError) as exc:
            raise UnavailableError(f"image {ref}: could not get a token for {where}: {getattr(exc, 'reason', exc)}") from None
        token = data.get("token") or data.get("access_token")
        if not token:
            raise AccessDeniedError(f"image {ref}: the token service of {where} returned no token")
        return f"Bearer {token}"

    @staticmethod
    def _error(exc: urllib.error.HTTPError, where: str, reference: str) -> Exception:
        if exc.code == 404:
            return NotFoundError(f"image {reference} does not exist in {where}")
        if exc.code in (401, 403):
            return AccessDeniedError(f"image {reference}: {where} denied access (HTTP {exc.code}); "
                                     "check the registry credentials")
        if exc.code == 429:
            after = exc.headers.get("Retry-After")
            return UnavailableError(f"image {reference}: {where} is rate limiting (HTTP 429"
                                    + (f", retry after {after} s)" if after else ")"))
        return UnavailableError(f"image {reference}: {where} answered HTTP {exc.code}")


def _media_type_of(body: bytes) -> str:
    try:
        return str(json.loads(body).get("mediaType", ""))
    except (ValueError, AttributeError):
        return ""


# --- where credentials come from -------------------------------------------------------------


def chained(*providers: Credentials) -> Credentials:
    """The first provider that has credentials for a host wins."""

    def lookup(host: str) -> tuple[str, str] | None:
        for provider in providers:
            found = provider(host)
            if found is not None:
                return found
        return None

    return lookup


def static_credentials(registries: Mapping[str, Mapping[str, str]]) -> Credentials:
    """``{"ghcr.io": {"username": …, "password": …}}`` (an Airflow connection's extra)."""

    def lookup(host: str) -> tuple[str, str] | None:
        entry = registries.get(host)
        if not entry:
            return None
        return str(entry.get("username") or entry.get("login") or ""), str(entry.get("password") or "")

    return lookup


def docker_config_credentials(path: str | None = None) -> Credentials:
    """What ``docker login`` stored (``$DOCKER_CONFIG/config.json``, ``~/.docker/config.json``):
    how CI jobs that pushed the image are already logged in. Credential helpers are not run."""
    import os
    from pathlib import Path

    config = Path(path) if path else Path(os.environ.get("DOCKER_CONFIG") or Path.home() / ".docker") / "config.json"
    try:
        auths = json.loads(config.read_text()).get("auths", {})
    except (OSError, ValueError):
        auths = {}

    def lookup(host: str) -> tuple[str, str] | None:
        for key in (host, f"https://{host}", "https://index.docker.io/v1/" if host == "registry-1.docker.io" else None):
            entry = auths.get(key) if key else None
            if entry and entry.get("auth"):
                user, _, password = base64.b64decode(entry["auth"]).decode().partition(":")
                return user, password
        return None

    return lookup


def ecr_credentials(token: Callable[[str], tuple[str, str]]) -> Credentials:
    """ECR hosts get a token (``token(host)``: from the AWS connection); other hosts nothing."""
    from stackyard.adapters.chart_registry import ECR_HOST

    return lambda host: token(host) if ECR_HOST.match(host) else None
