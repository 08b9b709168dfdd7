"""Reading charts and their profiles from directories and packages."""

import io
import tarfile

import pytest

from stackyard.core.charts import chart_files_digest, load_chart, load_chart_bytes
from stackyard.core.secrets import SecretRegistry, is_sops_encrypted
from stackyard.exceptions import InputError, NotFoundError

from tests.conftest import CHARTS, EXAMPLE_SERVICES

PROFILES = ["ephemeral", "production", "qa1", "stage"]


@pytest.mark.parametrize("service", EXAMPLE_SERVICES)
def test_example_charts_have_every_profile_with_encrypted_secrets(service):
    chart = load_chart(CHARTS / service)
    assert sorted(chart.profiles) == PROFILES
    for profile in chart.profiles.values():
        assert profile.secrets is not None and is_sops_encrypted(profile.secrets)


def test_unknown_profile_error_lists_the_charts_profiles():
    chart = load_chart(CHARTS / "orders")
    with pytest.raises(NotFoundError, match=r"no profile 'qa9' \(profiles: ephemeral, production, qa1, stage\)"):
        chart.profile("qa9")


def _tgz(files: dict[str, bytes], mtime: int = 0) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size, info.mtime = len(data), mtime
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


def test_packaged_chart_reads_profiles_inside_the_artifact():
    data = _tgz({
        "svc/Chart.yaml": b"apiVersion: v2\nname: svc\nversion: 1.2.3\n",
        "svc/values.yaml": b"replicaCount: 1\n",
        "svc/profiles/qa1/values.yaml": b"replicaCount: 2\n",
    })
    chart = load_chart_bytes(data, "svc.tgz")
    assert (chart.name, chart.version) == ("svc", "1.2.3")
    assert chart.profile("qa1").values == {"replicaCount": 2}
    assert chart.profile("qa1").secrets is None


@pytest.mark.parametrize(
    "files, message",
    [
        ({"svc/values.yaml": b"{}"}, "no Chart.yaml"),
        ({"svc/Chart.yaml": b"name: svc\n"}, "missing 'version'"),
        ({"svc/Chart.yaml": b"name: Bad_Name\nversion: 1.0.0\n"}, "not a DNS-1123 label"),
        ({"svc/Chart.yaml": b"name: svc\nversion: 1.0.0\n", "svc/profiles/qa1/values.yaml": b"a: [\n"}, "svc/profiles/qa1/values.yaml: invalid YAML"),
        ({"svc/Chart.yaml": b"name: svc\nversion: 1.0.0\n", "svc/profiles/qa1/values.yaml": b"- a\n"}, "must be a mapping"),
    ],
)
def test_bad_charts_are_refused_naming_the_file(files, message):
    with pytest.raises(InputError, match=message):
        load_chart_bytes(_tgz(files), "svc.tgz")


def test_not_a_tgz_is_refused():
    with pytest.raises(InputError, match="not a packaged chart"):
        load_chart_bytes(b"plain text", "x.tgz")


def test_files_digest_ignores_tar_timestamps_but_not_content():
    files = {"svc/Chart.yaml": b"name: svc\nversion: 1.0.0\n"}
    assert chart_files_digest(_tgz(files, mtime=1)) == chart_files_digest(_tgz(files, mtime=2))
    assert chart_files_digest(_tgz(files)) != chart_files_digest(_tgz({"svc/Chart.yaml": b"name: svc\nversion: 1.0.1\n"}))


@pytest.mark.parametrize(
    "document, encrypted",
    [
        (b"secrets:\n  password: hunter22\n", False),
        (b"secrets:\n  password: ENC[AES256_GCM,data:abc,iv:x,tag:y,type:str]\nsops:\n  mac: ENC[AES256_GCM,data:m]\n", True),
        (b"secrets:\n  password: hunter22\nsops:\n  mac: ENC[AES256_GCM,data:m]\n", False),  # half-encrypted
        (b"secrets:\n  password: ENC[AES256_GCM,data:abc]\n", False),  # no metadata
        (b"not: [valid\n", False),
    ],
)
def test_sops_encryption_is_recognised_only_when_every_value_is_encrypted(document, encrypted):
    assert is_sops_encrypted(document) is encrypted


def test_redaction_replaces_every_registered_secret_longest_first():
    registry = SecretRegistry()
    registry.add(["s3cr3t-value", "s3cr3t-value-long", "line-one\nline-two-x"])
    text = "a s3cr3t-value-long and s3cr3t-value then line-two-x"
    assert registry.redact(text) == "a *** and *** then ***"
