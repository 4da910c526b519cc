"""Mutual TLS settings and the common name taken from a proxy's subject header."""

from __future__ import annotations

from pathlib import Path

import pytest

from orderfast.config import ConfigError, Settings
from orderfast.http.guard import common_name


@pytest.mark.parametrize(
    ("subject", "name"),
    [
        ("CN=inventory-svc,O=Shop", "inventory-svc"),  # RFC 4514 (nginx $ssl_client_s_dn)
        ("/C=FR/O=Shop/CN=inventory-svc", "inventory-svc"),  # OpenSSL one-line (HAProxy ssl_c_s_dn)
        ("O=Shop,CN=svc\\,eu", "svc,eu"),  # an escaped separator is part of the name
        ("cn = relay", "relay"),
        ("/C=FR/O=Shop", None),  # no CN
        ("/O=Shop/CN=", None),
        ("CN=" + "x" * 129, None),
        ("CN=bad\x01name", None),
    ],
)
def test_the_common_name_of_a_subject(subject: str, name: str | None) -> None:
    assert common_name(subject) == name


def test_tls_settings_are_checked_at_start(tmp_path: Path) -> None:
    pem = tmp_path / "x.pem"
    pem.write_text("-----BEGIN CERTIFICATE-----\n")
    with pytest.raises(ConfigError, match="go together"):
        Settings.from_env({"ORDERFAST_TLS_CERT": str(pem)})
    with pytest.raises(ConfigError, match="cannot read"):
        Settings.from_env({"ORDERFAST_TLS_CERT": str(pem), "ORDERFAST_TLS_KEY": str(tmp_path / "missing.pem")})
    with pytest.raises(ConfigError, match="needs ORDERFAST_TLS_CERT"):
        Settings.from_env({"ORDERFAST_TLS_CLIENT_CA": str(pem)})
    with pytest.raises(ConfigError, match="needs ORDERFAST_TRUSTED_PROXIES"):
        Settings.from_env({"ORDERFAST_CLIENT_CERT_HEADER": "x-client-cert-subject"})
    with pytest.raises(ConfigError, match="HTTP header name"):
        Settings.from_env({"ORDERFAST_CLIENT_CERT_HEADER": "bad header", "ORDERFAST_TRUSTED_PROXIES": "10.0.0.1"})
    ok = Settings.from_env(
        {"ORDERFAST_CLIENT_CERT_HEADER": "X-Client-Cert-Subject", "ORDERFAST_TRUSTED_PROXIES": "10.0.0.1"}
    )
    assert ok.client_cert_header == "x-client-cert-subject"
