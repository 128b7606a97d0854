"""Certificates for the TLS tests, made by the ``openssl`` command line
(OpenSSL 3: ``req -x509 -CA``) in a temporary directory: a test CA, a
server certificate for localhost / 127.0.0.1 / ::1, client certificates
with a chosen CN, and a second CA that Leveret does not trust. EC P-256
keys: quick to make."""

from __future__ import annotations

import shutil
import ssl
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

KEY = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]


def _openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=30)


@dataclass
class Pair:
    """A certificate and its key (PEM files)."""

    cert: Path
    key: Path


class CertFactory:
    """Makes CAs and certificates under ``directory``."""

    def __init__(self, directory: Path):
        if shutil.which("openssl") is None:
            pytest.skip("needs the openssl command")
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)

    def ca(self, name: str) -> Pair:
        """A self-signed CA certificate with CN ``name``."""
        pair = Pair(self.directory / f"{name}.pem", self.directory / f"{name}.key")
        _openssl("req", "-x509", *KEY, "-keyout", str(pair.key), "-out", str(pair.cert), "-days", "2",
                 "-subj", f"/CN={name}", "-addext", "basicConstraints=critical,CA:TRUE",
                 "-addext", "keyUsage=critical,keyCertSign,cRLSign")
        return pair

    def issue(self, ca: Pair, name: str, cn: str, server: bool) -> Pair:
        """A certificate with CN ``cn`` signed by ``ca``: for a server
        (localhost, 127.0.0.1, ::1) or for a client."""
        pair = Pair(self.directory / f"{name}.pem", self.directory / f"{name}.key")
        usage = (["-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1",
                  "-addext", "extendedKeyUsage=serverAuth"] if server
                 else ["-addext", "extendedKeyUsage=clientAuth"])
        _openssl("req", "-x509", *KEY, "-keyout", str(pair.key), "-out", str(pair.cert), "-days", "2",
                 "-subj", f"/O=Leveret tests/CN={cn}", "-CA", str(ca.cert), "-CAkey", str(ca.key),
                 "-addext", "basicConstraints=critical,CA:FALSE", *usage)
        return pair


@dataclass
class PKI:
    """What the TLS tests use: ``ca`` (trusted by the broker and the
    clients), ``server``, ``client`` (CN guest, the broker's default user),
    ``stranger`` (CN mallory, no such user), ``rogue`` (CN guest but signed
    by ``rogue_ca``, which nobody trusts)."""

    ca: Pair
    server: Pair
    client: Pair
    stranger: Pair
    rogue: Pair

    def server_args(self, verify: str = "none") -> list[str]:
        """Leveret flags for an amqps listener with these files."""
        args = ["--tls-cert", str(self.server.cert), "--tls-key", str(self.server.key)]
        if verify == "peer":
            args += ["--tls-ca", str(self.ca.cert), "--tls-verify", "peer"]
        return args

    def client_context(self, pair: Pair | None = None) -> ssl.SSLContext:
        """A client context that trusts ``ca`` and checks the server's name,
        presenting ``pair`` when given."""
        context = ssl.create_default_context(cafile=str(self.ca.cert))
        if pair is not None:
            context.load_cert_chain(str(pair.cert), str(pair.key))
        return context


def make_pki(directory: Path) -> PKI:
    """Every certificate of ``PKI`` under ``directory``."""
    factory = CertFactory(directory)
    ca, rogue_ca = factory.ca("leveret-test-ca"), factory.ca("rogue-ca")
    return PKI(ca=ca, server=factory.issue(ca, "server", "localhost", server=True),
                   client=factory.issue(ca, "client", "guest", server=False),
                   stranger=factory.issue(ca, "stranger", "mallory", server=False),
                   rogue=factory.issue(rogue_ca, "rogue", "guest", server=False))
