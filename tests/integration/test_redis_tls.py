"""Redis over TLS with an auth token read from Secrets Manager, as ElastiCache needs.

A real redis-server with `--tls-port` and `requirepass`, a CA and server certificate made
here, and the auth token stored in moto's Secrets Manager: the router's settings build a
`rediss://` URL from REDIS_HOST, REDIS_PORT and REDIS_AUTH_SECRET and the queue works.
"""

from __future__ import annotations

import datetime
import ipaddress
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
import redis
from aws_lambda_powertools.utilities import parameters
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from backend.core.errors import NotFound
from backend.core.prompts import PromptRequest
from backend.entrypoints import settings
from backend.entrypoints.local import free_port
from tests.fixtures.aws import aws_env, moto_server  # noqa: F401
from tests.helpers import wait_until

TOKEN = "an-auth-token-of-sixteen+-chars"


def _cert(subject: str, key: ec.EllipticCurvePrivateKey, issuer: x509.Name | None,
          signer: ec.EllipticCurvePrivateKey, ca: bool) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder().subject_name(name).issuer_name(issuer or name).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if not ca:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
    return builder.sign(signer, hashes.SHA256())


@pytest.fixture
def tls_redis(tmp_path: Path) -> Iterator[tuple[int, Path]]:
    ca_key, srv_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca = _cert("tinyllama test CA", ca_key, None, ca_key, ca=True)
    srv = _cert("127.0.0.1", srv_key, ca.subject, ca_key, ca=False)
    pem = serialization.Encoding.PEM
    (tmp_path / "ca.pem").write_bytes(ca.public_bytes(pem))
    (tmp_path / "srv.pem").write_bytes(srv.public_bytes(pem))
    (tmp_path / "srv.key").write_bytes(srv_key.private_bytes(
        pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    port = free_port()
    proc = subprocess.Popen(
        [shutil.which("redis-server") or "redis-server", "--port", "0", "--tls-port", str(port),
         "--bind", "127.0.0.1", "--save", "", "--requirepass", TOKEN,
         "--tls-cert-file", str(tmp_path / "srv.pem"), "--tls-key-file", str(tmp_path / "srv.key"),
         "--tls-ca-cert-file", str(tmp_path / "ca.pem"), "--tls-auth-clients", "no", "--dir", str(tmp_path)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    probe = redis.Redis(host="127.0.0.1", port=port, password=TOKEN, ssl=True,
                        ssl_ca_certs=str(tmp_path / "ca.pem"), socket_connect_timeout=0.5)

    def answers() -> bool:
        try:
            return bool(probe.ping())
        except redis.ConnectionError:
            assert proc.poll() is None, "redis-server with TLS did not start"
            return False

    wait_until(answers, 10, message="redis-server with TLS")
    yield port, tmp_path / "ca.pem"
    proc.terminate()
    proc.wait(5)


def test_queue_over_tls_with_the_token_from_secrets_manager(
    tls_redis: tuple[int, Path], aws_env: str, monkeypatch: pytest.MonkeyPatch  # noqa: F811
) -> None:
    port, ca = tls_redis
    sm = boto3.client("secretsmanager", endpoint_url=aws_env)
    arn = sm.create_secret(Name="tinyllama/redis-auth", SecretString=TOKEN)["ARN"]
    monkeypatch.setenv("AWS_ENDPOINT_URL_SECRETS_MANAGER", aws_env)
    monkeypatch.delenv("REDIS_URL", raising=False)
    monkeypatch.setenv("REDIS_HOST", "127.0.0.1")
    monkeypatch.setenv("REDIS_PORT", str(port))
    monkeypatch.setenv("REDIS_AUTH_SECRET", arn)
    monkeypatch.setenv("REDIS_CA_CERTS", str(ca))
    parameters.clear_caches()

    url = settings.redis_url_from_env()
    assert url is not None and url.startswith("rediss://")
    queue = settings.queue_from_env()
    rid, created = queue.submit("alice", PromptRequest([{"role": "user", "content": "over TLS"}]))
    assert created
    assert queue.get("alice", rid)["status"] == "queued"
    with pytest.raises(NotFound):
        queue.get("bob", rid)


def test_plain_connection_or_wrong_token_is_refused(tls_redis: tuple[int, Path]) -> None:
    port, ca = tls_redis
    with pytest.raises(redis.ConnectionError):
        redis.Redis(host="127.0.0.1", port=port, password=TOKEN, socket_connect_timeout=1, socket_timeout=1).ping()
    with pytest.raises(redis.AuthenticationError):
        redis.Redis(host="127.0.0.1", port=port, password="wrong-token", ssl=True, ssl_ca_certs=str(ca)).ping()


def test_secret_is_read_once_and_cached(aws_env: str, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    sm = boto3.client("secretsmanager", endpoint_url=aws_env)
    arn = sm.create_secret(Name="tinyllama/redis-cache-test", SecretString="first-token")["ARN"]
    monkeypatch.setenv("AWS_ENDPOINT_URL_SECRETS_MANAGER", aws_env)
    monkeypatch.delenv("REDIS_URL", raising=False)
    monkeypatch.setenv("REDIS_HOST", "127.0.0.1")
    monkeypatch.setenv("REDIS_AUTH_SECRET", arn)
    parameters.clear_caches()
    assert settings.redis_url_from_env() == "rediss://:first-token@127.0.0.1:6379/0"
    sm.put_secret_value(SecretId=arn, SecretString="rotated-token")
    # Within the max age the cached value is used: no Secrets Manager call per cold path.
    assert settings.redis_url_from_env() == "rediss://:first-token@127.0.0.1:6379/0"
    parameters.clear_caches()
    assert settings.redis_url_from_env() == "rediss://:rotated-token@127.0.0.1:6379/0"


def test_tls_checks_the_servers_name_whatever_redis_py_defaults_to() -> None:
    """redis-py 5.x (which pyproject allows) checked the chain but not the host name."""
    from backend.adapters.redis_queue import RedisQueue

    kwargs = RedisQueue.from_url("rediss://:token@cache.example.internal:6379/0").r.connection_pool.connection_kwargs
    assert kwargs["ssl_check_hostname"] is True and kwargs.get("ssl_cert_reqs", "required") == "required"


def test_the_stacks_json_secret_gives_its_password(aws_env: str, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    """infra/stack.yaml generates {"password": ...} (ElastiCache resolves that key); the
    Redis instance adds "ca". The URL carries the password, never the JSON."""
    sm = boto3.client("secretsmanager", endpoint_url=aws_env)
    arn = sm.create_secret(Name="tinyllama/redis-json", SecretString='{"password": "pass/with+chars"}')["ARN"]
    monkeypatch.setenv("AWS_ENDPOINT_URL_SECRETS_MANAGER", aws_env)
    monkeypatch.delenv("REDIS_URL", raising=False)
    monkeypatch.setenv("REDIS_HOST", "10.42.0.9")
    monkeypatch.setenv("REDIS_AUTH_SECRET", arn)
    parameters.clear_caches()
    assert settings.redis_url_from_env() == "rediss://:pass%2Fwith%2Bchars@10.42.0.9:6379/0"
