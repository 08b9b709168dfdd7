"""The sops wrapper against the real sops binary and the example charts' secrets."""

import logging

import pytest

from stackyard.core.charts import load_chart
from stackyard.exceptions import AccessDeniedError, InputError
from stackyard.adapters.sops import Sops, SopsConfig

from tests.conftest import CHARTS, EXAMPLE_AGE_KEY


@pytest.fixture
def sops(tmp_path, sops_bin):
    return Sops(SopsConfig(home=tmp_path, binary=sops_bin, age_key_file=str(EXAMPLE_AGE_KEY), base_env={"PATH": "/usr/bin:/bin"}))


def test_decrypts_in_memory(sops):
    profile = load_chart(CHARTS / "orders").profile("qa1")
    values = sops.decrypt(profile.secrets, source=profile.secrets_source)
    assert set(values["secrets"]) == {"DATABASE_PASSWORD", "API_TOKEN"}
    assert all(len(v) >= 5 for v in values["secrets"].values())


def test_no_access_to_the_key_is_a_clear_error(sops):
    profile = load_chart(CHARTS / "orders").profile("production")
    with pytest.raises(AccessDeniedError, match=r"orders/profiles/production/secrets.yaml: no access to key age1"):
        sops.decrypt(profile.secrets, source=profile.secrets_source)


def test_tampered_file_is_a_mac_error(sops):
    profile = load_chart(CHARTS / "orders").profile("qa1")
    lines = profile.secrets.decode().splitlines()
    # Swap the two encrypted values: each decrypts, but the MAC over the tree no longer matches.
    pw = next(i for i, l in enumerate(lines) if "DATABASE_PASSWORD" in l)
    tok = next(i for i, l in enumerate(lines) if "API_TOKEN" in l)
    lines[pw], lines[tok] = lines[pw].split(":", 1)[0] + ":" + lines[tok].split(":", 1)[1], lines[tok].split(":", 1)[0] + ":" + lines[pw].split(":", 1)[1]
    with pytest.raises(InputError, match="secrets.yaml"):
        sops.decrypt("\n".join(lines).encode(), source="orders/profiles/qa1/secrets.yaml")


def test_not_a_sops_document_is_an_input_error(sops):
    with pytest.raises((InputError, AccessDeniedError)):
        sops.decrypt(b"plain: text\n", source="x/secrets.yaml")


def test_encrypt_then_decrypt_round_trip(sops):
    public = [l.split(": ", 1)[1] for l in EXAMPLE_AGE_KEY.read_text().splitlines() if l.startswith("# public key")][0]
    encrypted = sops.encrypt(b"token: round-trip-value\n", recipients_args=["--age", public], source="t")
    assert b"round-trip-value" not in encrypted
    assert sops.decrypt(encrypted, source="t") == {"token": "round-trip-value"}


def test_plaintext_never_reaches_the_log(sops, caplog):
    caplog.set_level(logging.DEBUG)
    profile = load_chart(CHARTS / "catalog").profile("ephemeral")
    values = sops.decrypt(profile.secrets, source=profile.secrets_source)
    for secret in values["secrets"].values():
        assert secret not in caplog.text
