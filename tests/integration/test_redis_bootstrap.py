"""infra/redis/bootstrap_redis.sh run for real: the RedisMode=instance machine's Redis.

The script is the instance's user data. Here it runs against this machine's openssl and
redis-server in a tmp dir (TL_REDIS_START=none: it writes the config, the test starts the
server), and, where the aws CLI is installed, against moto's Secrets Manager: it reads the
password from the stack's secret and writes its CA back. The queue then works through it
over verified TLS, as the router and the worker use it (settings.queue_from_env).
"""

from __future__ import annotations

import json
import os
import shutil
import ssl
import subprocess
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
import redis
from aws_lambda_powertools.utilities import parameters
from cryptography import x509

from backend.adapters.redis_queue import RedisQueue
from backend.core.prompts import PromptRequest
from backend.entrypoints import settings
from backend.entrypoints.local import free_port
from tests.fixtures.aws import aws_env, moto_server  # noqa: F401
from tests.helpers import wait_until

SCRIPT = Path(__file__).resolve().parents[2] / "infra" / "redis" / "bootstrap_redis.sh"
PASSWORD = "Abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJ"
REDIS_SERVER = shutil.which("redis-server") or "redis-server"


def bootstrap(state: Path, port: int, **env: str) -> subprocess.CompletedProcess[str]:
    """Run the script as the instance would, but writing only the config (no systemd)."""
    full = {**os.environ, "TL_REDIS_DIR": str(state), "TL_REDIS_PORT": str(port),
            "TL_REDIS_BIND": "127.0.0.1", "TL_REDIS_SANS": "IP:127.0.0.1,DNS:localhost",
            "TL_REDIS_SERVER": REDIS_SERVER, "TL_REDIS_START": "none", **env}
    return subprocess.run(["bash", str(SCRIPT)], env=full, capture_output=True, text=True, timeout=60, check=False)


class Server:
    """redis-server started with the config the script wrote; restartable."""

    def __init__(self, state: Path, port: int):
        self.state, self.port = state, port
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen([REDIS_SERVER, str(self.state / "redis.conf")],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        ca = str(self.state / "tls" / "ca.crt")
        probe = redis.Redis(host="127.0.0.1", port=self.port, password=PASSWORD, ssl=True, ssl_ca_certs=ca,
                            ssl_check_hostname=True, socket_connect_timeout=0.5)

        def answers() -> bool:
            try:
                return bool(probe.ping())
            except redis.ConnectionError:
                assert self.proc is not None and self.proc.poll() is None, "redis-server exited on the config"
                return False

        wait_until(answers, 10, message="redis-server on the bootstrap's config")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)


@pytest.fixture
def redis_box(tmp_path: Path) -> Iterator[tuple[Server, Path]]:
    state = tmp_path / "state"
    (tmp_path / "password").write_text(PASSWORD)
    port = free_port()
    done = bootstrap(state, port, TL_REDIS_PASSWORD_FILE=str(tmp_path / "password"))
    assert done.returncode == 0, done.stderr
    server = Server(state, port)
    server.start()
    yield server, state
    server.stop()


def test_config_serves_tls_with_the_password_and_an_append_only_file(redis_box: tuple[Server, Path]) -> None:
    server, state = redis_box
    conf = (state / "redis.conf").read_text()
    assert "port 0\n" in conf and f"tls-port {server.port}\n" in conf and "appendonly yes\n" in conf
    assert oct((state / "redis.conf").stat().st_mode & 0o777) == "0o600", "the config holds the password"
    ca_pem = (state / "tls" / "ca.crt").read_text()

    queue = RedisQueue.from_url(f"rediss://:{PASSWORD}@127.0.0.1:{server.port}/0", ca_data=ca_pem)
    rid, created = queue.submit("alice", PromptRequest([{"role": "user", "content": "through the instance"}]))
    assert created and queue.get("alice", rid)["status"] == "queued"

    # The append-only file keeps the queue across a restart (results expire, jobs must not vanish).
    assert any((state / "data").rglob("*.aof")), "no append-only file in the data dir"
    server.stop()
    server.start()
    again = RedisQueue.from_url(f"rediss://:{PASSWORD}@127.0.0.1:{server.port}/0", ca_data=ca_pem)
    assert again.get("alice", rid)["status"] == "queued"


def test_no_password_no_plain_text_and_no_other_ca(redis_box: tuple[Server, Path], tmp_path: Path) -> None:
    server, state = redis_box
    ca = str(state / "tls" / "ca.crt")
    with pytest.raises(redis.AuthenticationError):
        redis.Redis(host="127.0.0.1", port=server.port, ssl=True, ssl_ca_certs=ca).ping()
    with pytest.raises(redis.AuthenticationError):
        redis.Redis(host="127.0.0.1", port=server.port, password="not-the-password", ssl=True, ssl_ca_certs=ca).ping()
    with pytest.raises(redis.ConnectionError):
        redis.Redis(host="127.0.0.1", port=server.port, password=PASSWORD, socket_timeout=1).ping()
    # A client that verifies (as the router's does) refuses a Redis signed by another CA.
    other = tmp_path / "other"
    (tmp_path / "password").write_text(PASSWORD)
    assert bootstrap(other, free_port(), TL_REDIS_PASSWORD_FILE=str(tmp_path / "password")).returncode == 0
    with pytest.raises(redis.ConnectionError) as refused:
        RedisQueue.from_url(f"rediss://:{PASSWORD}@127.0.0.1:{server.port}/0",
                            ca_data=(other / "tls" / "ca.crt").read_text()).r.ping()
    assert isinstance(refused.value.__context__, ssl.SSLError) or "certificate" in str(refused.value).lower()


def test_a_second_boot_keeps_the_ca_and_names_the_server(tmp_path: Path) -> None:
    (tmp_path / "password").write_text(PASSWORD)
    state, port = tmp_path / "state", free_port()
    assert bootstrap(state, port, TL_REDIS_PASSWORD_FILE=str(tmp_path / "password")).returncode == 0
    first_ca = (state / "tls" / "ca.crt").read_bytes()
    again = bootstrap(state, port, TL_REDIS_PASSWORD_FILE=str(tmp_path / "password"),
                      TL_REDIS_SANS="IP:10.42.0.9,DNS:ip-10-42-0-9.ec2.internal")
    assert again.returncode == 0, again.stderr
    assert (state / "tls" / "ca.crt").read_bytes() == first_ca, "clients trust this CA: it must outlive a reboot"
    cert = x509.load_pem_x509_certificate((state / "tls" / "server.crt").read_bytes())
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert [str(ip) for ip in names.get_values_for_type(x509.IPAddress)] == ["10.42.0.9"]
    assert names.get_values_for_type(x509.DNSName) == ["ip-10-42-0-9.ec2.internal"]
    ca = x509.load_pem_x509_certificate(first_ca)
    cert.verify_directly_issued_by(ca)


def test_a_short_or_missing_password_is_refused(tmp_path: Path) -> None:
    (tmp_path / "password").write_text("short")
    done = bootstrap(tmp_path / "state", free_port(), TL_REDIS_PASSWORD_FILE=str(tmp_path / "password"))
    assert done.returncode != 0 and "shorter than 16" in done.stderr
    done = bootstrap(tmp_path / "state", free_port())
    assert done.returncode != 0 and "TL_REDIS_SECRET_ID" in done.stderr


@pytest.mark.skipif(shutil.which("aws") is None, reason="no aws CLI here (the instance's script calls it)")
def test_the_ca_travels_in_the_secret_and_the_router_verifies_it(
    tmp_path: Path, aws_env: str, monkeypatch: pytest.MonkeyPatch  # noqa: F811
) -> None:
    sm = boto3.client("secretsmanager", endpoint_url=aws_env)
    # What CloudFormation's GenerateSecretString makes: a plain token.
    arn = sm.create_secret(Name=f"tinyllama/redis-{tmp_path.name}", SecretString=PASSWORD)["ARN"]
    monkeypatch.setenv("AWS_ENDPOINT_URL_SECRETS_MANAGER", aws_env)
    port = free_port()
    monkeypatch.delenv("REDIS_URL", raising=False)
    monkeypatch.delenv("REDIS_CA_CERTS", raising=False)
    monkeypatch.setenv("REDIS_HOST", "127.0.0.1")
    monkeypatch.setenv("REDIS_PORT", str(port))
    monkeypatch.setenv("REDIS_AUTH_SECRET", arn)
    monkeypatch.setenv("REDIS_CA_IN_SECRET", "1")
    parameters.clear_caches()

    # The router's cold start may come before the instance has published its CA: the
    # queue is built, and its first use answers "not yet" (a 503), never an unverified link.
    queue = settings.queue_from_env()
    with pytest.raises(redis.ConnectionError, match="not published its TLS certificate"):
        queue.r.ping()

    state = tmp_path / "state"
    done = bootstrap(state, port, TL_REDIS_SECRET_ID=arn, AWS_REGION="us-east-1")
    assert done.returncode == 0, done.stderr
    published = json.loads(sm.get_secret_value(SecretId=arn)["SecretString"])
    assert published == {"password": PASSWORD, "ca": (state / "tls" / "ca.crt").read_text()}
    versions = len(sm.list_secret_version_ids(SecretId=arn)["Versions"])
    # A reboot with the CA already published writes no new version.
    assert bootstrap(state, port, TL_REDIS_SECRET_ID=arn, AWS_REGION="us-east-1").returncode == 0
    assert len(sm.list_secret_version_ids(SecretId=arn)["Versions"]) == versions

    server = Server(state, port)
    server.start()
    try:
        # The same queue object: the cached plain token is read again now the CA is there.
        rid, created = queue.submit("alice", PromptRequest([{"role": "user", "content": "verified"}]))
        assert created and queue.get("alice", rid)["status"] == "queued"
        client = queue.r
        assert isinstance(client, redis.Redis), "RedisMode=instance is one node, not a cluster"
        kwargs = client.connection_pool.connection_kwargs
        assert kwargs["ssl_ca_data"] == published["ca"] and kwargs["ssl_check_hostname"] is True
        assert kwargs.get("ssl_cert_reqs", "required") == "required"
    finally:
        server.stop()
