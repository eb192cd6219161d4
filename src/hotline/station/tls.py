"""A self-signed certificate for a console served off loopback, made at `hotline init`.

ECDSA P-256 (what every browser accepts), valid for two years, for the console's address only.
Operators check its SHA-256 fingerprint, printed by `init`, against the one their browser shows
the first time; an organisation with its own certificate authority puts its own files in
`tls_cert` and `tls_key` instead.

The station raises an alarm `WARN_DAYS` before the certificate it serves expires (discipline.py);
`hotline tls renew` makes a new one for the same address, and the station serves it from its
next start."""

from __future__ import annotations

import datetime
import ipaddress
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from hotline.errors import ConfigError
from hotline.station.datadir import write_atomically

__all__ = ["VALID_DAYS", "WARN_DAYS", "expires_ns", "fingerprint", "make_self_signed"]

VALID_DAYS = 730
WARN_DAYS = 30  # an alarm this long before the console's certificate expires


def make_self_signed(
    station: str, host: str, cert_file: Path, key_file: Path, days: int = VALID_DAYS
) -> str:
    """Write a key and a certificate for `host` valid for `days` (both mode 0600); return the
    certificate's SHA-256 fingerprint as colon-separated hex, as browsers show it."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"Hotline {station} console")])
    try:
        alt: x509.GeneralName = x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        alt = x509.DNSName(host)
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName([alt]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    write_atomically(
        key_file,
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
        mode=0o600,
    )
    write_atomically(cert_file, certificate.public_bytes(serialization.Encoding.PEM), mode=0o600)
    return _fingerprint(certificate)


def fingerprint(cert_file: Path) -> str:
    return _fingerprint(x509.load_pem_x509_certificate(cert_file.read_bytes()))


def expires_ns(cert_file: Path) -> int:
    """When the certificate in `cert_file` stops being valid, in ns since the Unix epoch.

    Raises:
        ConfigError: the file cannot be read or holds no PEM certificate.
    """
    try:
        certificate = x509.load_pem_x509_certificate(cert_file.read_bytes())
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read the certificate {cert_file}: {exc}") from exc
    return int(certificate.not_valid_after_utc.timestamp()) * 1_000_000_000


def _fingerprint(certificate: x509.Certificate) -> str:
    return certificate.fingerprint(hashes.SHA256()).hex(":").upper()
