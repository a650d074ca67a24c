"""Debian's `docker-registry` (the distribution registry v2, 2.8) on loopback behind token authentication, as Docker
Hub and ghcr.io run it: the registry answers `401` with a Bearer challenge naming a token service; the token service
here is ours, issuing ES256 JWTs whose `x5c` certificate the registry's `rootcertbundle` trusts (the token format of
distribution's docs/spec/auth/jwt.md). Images are pushed through the HTTP API, blob then manifest."""

from __future__ import annotations

import base64
import datetime
import hashlib
import http.server
import json
import os
import shutil
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.x509.oid import NameOID

from tests.loopback_server import free_port, reply_json, serving

REGISTRY = shutil.which("docker-registry") or "/usr/bin/docker-registry"
SERVICE = "zbi-test-registry"
ISSUER = "zbi-test-token-issuer"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@dataclass
class TokenService:
    """Issues a token for whatever scope is asked (anonymous pulls, and the test's pushes); records each request."""

    key: ec.EllipticCurvePrivateKey
    cert: x509.Certificate
    requests: list[dict[str, str]] = field(default_factory=list)

    def token(self, scope: str) -> str:
        now = int(time.time())
        access = []
        if scope:
            kind, _, rest = scope.partition(":")  # repository:<name, maybe with a port>:pull,push
            name, _, actions = rest.rpartition(":")
            access.append({"type": kind, "name": name, "actions": actions.split(",")})
        header = {
            "typ": "JWT",
            "alg": "ES256",
            "x5c": [base64.b64encode(self.cert.public_bytes(serialization.Encoding.DER)).decode()],
        }
        claims = {"iss": ISSUER, "sub": "", "aud": SERVICE, "exp": now + 300, "nbf": now - 10, "iat": now,
                  "jti": _b64(os.urandom(12)), "access": access}  # fmt: skip
        signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}"
        r, s = decode_dss_signature(self.key.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256())))
        return f"{signing_input}.{_b64(r.to_bytes(32, 'big') + s.to_bytes(32, 'big'))}"


@dataclass
class Registry:
    url: str  # http://127.0.0.1:<port>
    host: str  # 127.0.0.1:<port>
    tokens: TokenService

    def _request(self, method: str, url: str, scope: str, body: bytes = b"", content_type: str = "") -> Any:
        headers = {"Authorization": f"Bearer {self.tokens.token(scope)}"}
        if content_type:
            headers["Content-Type"] = content_type
        request = urllib.request.Request(url, data=body if method != "GET" else None, method=method, headers=headers)
        return urllib.request.urlopen(request, timeout=10)

    def push_blob(self, name: str, data: bytes) -> str:
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        scope = f"repository:{name}:pull,push"
        with self._request("POST", f"{self.url}/v2/{name}/blobs/uploads/", scope) as started:
            location = urllib.parse.urljoin(self.url, started.headers["Location"])
        separator = "&" if "?" in location else "?"
        with self._request("PUT", f"{location}{separator}digest={digest}", scope, data, "application/octet-stream"):
            pass
        return digest

    def push_manifest(self, name: str, tag: str, manifest: bytes, media_type: str) -> str:
        with self._request("PUT", f"{self.url}/v2/{name}/manifests/{tag}", f"repository:{name}:pull,push",
                           manifest, media_type) as answer:  # fmt: skip
            return str(answer.headers["Docker-Content-Digest"])

    def push_image(self, name: str, tag: str, layer: bytes, architecture: str = "amd64") -> tuple[bytes, str]:
        """One platform's OCI manifest (a config and one layer) under `tag`; its bytes and the digest it got."""
        config = json.dumps({"architecture": architecture, "os": "linux", "config": {},
                             "rootfs": {"type": "layers", "diff_ids": ["sha256:" + hashlib.sha256(layer).hexdigest()]}}).encode()  # fmt: skip
        manifest = json.dumps({
            "schemaVersion": 2, "mediaType": OCI_MANIFEST,
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": self.push_blob(name, config), "size": len(config)},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": self.push_blob(name, layer), "size": len(layer)}],
        }).encode()  # fmt: skip
        return manifest, self.push_manifest(name, tag, manifest, OCI_MANIFEST)

    def push_chart(self, name: str, version: str, archive: bytes, chart_yaml: dict[str, str]) -> str:
        """A Helm chart as `helm push` stores it: its Chart.yaml as the config, its archive as the one layer."""
        config = json.dumps(chart_yaml).encode()
        manifest = json.dumps({
            "schemaVersion": 2, "mediaType": OCI_MANIFEST,
            "config": {"mediaType": "application/vnd.cncf.helm.config.v1+json", "digest": self.push_blob(name, config), "size": len(config)},
            "layers": [{"mediaType": "application/vnd.cncf.helm.chart.content.v1.tar+gzip", "digest": self.push_blob(name, archive), "size": len(archive)}],
        }).encode()  # fmt: skip
        return self.push_manifest(name, version, manifest, OCI_MANIFEST)

    def push_index(self, name: str, tag: str, platforms: dict[str, tuple[bytes, str]]) -> tuple[bytes, str]:
        index = json.dumps({
            "schemaVersion": 2, "mediaType": OCI_INDEX,
            "manifests": [{"mediaType": OCI_MANIFEST, "digest": digest, "size": len(manifest),
                           "platform": {"architecture": arch, "os": "linux"}}
                          for arch, (manifest, digest) in platforms.items()],
        }).encode()  # fmt: skip
        return index, self.push_manifest(name, tag, index, OCI_INDEX)


def _signing_cert() -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, ISSUER)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )  # fmt: skip
    return key, cert


@contextmanager
def token_server(tokens: TokenService) -> Iterator[str]:
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(self.path).query))
            tokens.requests.append(query)
            body = json.dumps({"token": tokens.token(query.get("scope", ""))}).encode()
            reply_json(self, 200, body)

        def log_message(self, *args: Any) -> None:
            pass

    with serving(Handler) as server:
        yield f"http://127.0.0.1:{server.server_address[1]}/token"


@contextmanager
def registry(workdir: Path) -> Iterator[Registry]:
    """The registry and its token service, stopped on exit; bounded: it must answer within 15 seconds."""
    key, cert = _signing_cert()
    tokens = TokenService(key, cert)
    (workdir / "root.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    port = free_port()
    with token_server(tokens) as realm:
        config = {
            "version": 0.1,
            "log": {"level": "error", "accesslog": {"disabled": True}},
            "storage": {"filesystem": {"rootdirectory": str(workdir / "data")}, "delete": {"enabled": True}},
            "http": {"addr": f"127.0.0.1:{port}"},
            "auth": {
                "token": {
                    "realm": realm,
                    "service": SERVICE,
                    "issuer": ISSUER,
                    "rootcertbundle": str(workdir / "root.pem"),
                }
            },
        }
        (workdir / "config.yml").write_text(json.dumps(config))  # JSON is YAML
        process = subprocess.Popen(
            [REGISTRY, "serve", str(workdir / "config.yml")],
            stdout=subprocess.DEVNULL,
            stderr=(workdir / "registry.log").open("wb"),
        )
        try:
            url = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 15
            while True:
                try:
                    urllib.request.urlopen(f"{url}/v2/", timeout=1)
                except urllib.error.HTTPError as error:
                    if error.code == 401:
                        break
                except OSError:
                    pass
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"docker-registry did not start: {(workdir / 'registry.log').read_text()}")
                time.sleep(0.05)
            yield Registry(url, f"127.0.0.1:{port}", tokens)
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
