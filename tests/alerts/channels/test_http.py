"""The shared HTTP transport: classification, timeouts, redirects, connect-time vetting."""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import ssl
import time
from collections.abc import Callable
from email.utils import format_datetime
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from pytest_django.fixtures import Settings

from alerts.channels import destinations, http
from alerts.channels.base import DeliveryResult
from tests.alerts.channels.receivers import Answer, Receiver, free_port


def post(url: str) -> DeliveryResult:
    return http.post(url, content=b'{"hello": 1}', headers={"Content-Type": "application/json"})


def test_it_delivers_and_keeps_the_answer(receiver: Receiver) -> None:
    receiver.answer(Answer(200, b"accepted " + b"x" * 1000))

    result = post(receiver.url + "/hook")

    assert result.ok
    assert result.status == 200
    assert result.answer.startswith("accepted ")
    assert len(result.answer) == 500
    assert result.duration_ms > 0
    [request] = receiver.requests
    assert (request.method, request.path, request.body) == ("POST", "/hook", b'{"hello": 1}')
    assert request.headers["content-type"] == "application/json"
    assert request.headers["user-agent"].startswith("Tradewatch/")


def test_it_retries_on_500(receiver: Receiver) -> None:
    receiver.answer(Answer(500, b"boom"))

    result = post(receiver.url)

    assert not result.ok
    assert not result.permanent
    assert result.status == 500
    assert result.answer == "boom"


def test_it_honours_retry_after_seconds_on_429(receiver: Receiver) -> None:
    receiver.answer(Answer(429, b"slow down", {"Retry-After": "7"}))

    result = post(receiver.url)

    assert not result.ok
    assert not result.permanent
    assert result.status == 429
    assert result.retry_after == 7


def test_it_honours_retry_after_as_an_http_date(receiver: Receiver) -> None:
    later = dt.datetime.now(tz=dt.UTC) + dt.timedelta(seconds=120)
    receiver.answer(Answer(429, b"", {"Retry-After": format_datetime(later, usegmt=True)}))

    result = post(receiver.url)

    assert result.retry_after is not None
    assert 100 < result.retry_after <= 120


def test_it_disables_the_channel_on_410(receiver: Receiver) -> None:
    receiver.answer(Answer(410, b"gone"))

    result = post(receiver.url)

    assert not result.ok
    assert result.permanent
    assert result.disable_channel


def test_it_stops_retrying_on_404(receiver: Receiver) -> None:
    receiver.answer(Answer(404, b"no such hook"))

    result = post(receiver.url)

    assert not result.ok
    assert result.permanent
    assert not result.disable_channel
    assert result.status == 404
    assert result.answer == "no such hook"


def test_it_never_follows_a_redirect(make_receiver: Callable[[], Receiver]) -> None:
    first, second = make_receiver(), make_receiver()
    first.answer(Answer(302, b"", {"Location": second.url + "/elsewhere"}))

    result = post(first.url)

    assert not result.ok
    assert result.permanent
    assert result.status == 302
    assert "redirects are not followed" in result.error
    assert result.details["location"] == second.url + "/elsewhere"
    assert second.requests == []


def test_it_times_out_a_receiver_that_never_answers(
    receiver: Receiver, short_timeout: float
) -> None:
    receiver.answer(Answer(hang=True))

    started = time.monotonic()
    result = post(receiver.url)

    assert not result.ok
    assert not result.permanent
    assert result.status is None
    assert "No answer within 0.5 s" in result.error
    assert time.monotonic() - started < short_timeout + 1.5


def test_it_caps_the_whole_exchange_not_each_read(receiver: Receiver, short_timeout: float) -> None:
    # Each byte comes well within the per-read timeout; the whole answer would take
    # several seconds.
    receiver.answer(Answer(200, b"ok", trickle=0.1))

    started = time.monotonic()
    result = post(receiver.url)

    assert not result.ok
    assert not result.permanent
    assert time.monotonic() - started < short_timeout + 1.0


def test_it_retries_when_nothing_listens() -> None:
    result = post(f"http://127.0.0.1:{free_port()}/")

    assert not result.ok
    assert not result.permanent
    assert "ConnectError" in result.error


def test_it_refuses_a_url_it_cannot_send_to() -> None:
    result = post("ftp://files.example/x")

    assert not result.ok
    assert result.permanent


@pytest.mark.usefixtures("nothing_allowed")
@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "2130706433"])
def test_it_refuses_loopback_at_connect_time(receiver: Receiver, host: str) -> None:
    result = post(f"http://{host}:{receiver.port}/hook")

    assert not result.ok
    assert result.permanent
    assert "Destination refused" in result.error
    assert "loopback" in result.error
    assert receiver.requests == []


@pytest.mark.usefixtures("nothing_allowed")
@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://10.1.2.3/", "private"),
        ("http://0.0.0.0/", "unspecified"),
        ("http://169.254.169.254/latest/meta-data/", "metadata"),
        ("http://[::1]/", "loopback"),
        ("http://[::ffff:127.0.0.1]/", "loopback"),
        ("http://[fd00:ec2::254]/", "metadata"),
    ],
)
def test_it_refuses_unsafe_addresses_at_connect_time(url: str, reason: str) -> None:
    result = post(url)

    assert not result.ok
    assert result.permanent
    assert reason in result.error


def test_it_refuses_a_name_rebound_to_loopback_after_the_save_time_check(
    receiver: Receiver, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings.TRADEWATCH_DELIVERY_ALLOWED_NETWORKS = []
    answers = iter([["93.184.215.14"], ["127.0.0.1"]])

    def rebinding_resolver(host: str, port: int) -> list[destinations.IPAddress]:
        return [ipaddress.ip_address(a) for a in next(answers)]

    # The one seam mocked: DNS, which cannot be made to rebind on this machine.
    monkeypatch.setattr(destinations, "resolve", rebinding_resolver)
    monkeypatch.setattr(http, "resolve", rebinding_resolver)
    url = f"http://rebinding.example:{receiver.port}/hook"

    destinations.destination_check(url)
    result = post(url)

    assert result.permanent
    assert "rebinding.example (127.0.0.1)" in result.error
    assert receiver.requests == []


def test_it_connects_a_vetted_name_to_its_address(receiver: Receiver) -> None:
    result = post(f"http://localhost:{receiver.port}/hook")

    assert result.ok
    assert receiver.requests[0].headers["host"] == f"localhost:{receiver.port}"


def test_it_reuses_one_client_and_its_connections(receiver: Receiver) -> None:
    for _ in range(3):
        assert post(receiver.url).ok

    assert http.client() is http.client()
    assert len(receiver.requests) == 3


def test_it_makes_a_new_client_after_a_fork() -> None:
    inherited = http.client()
    read_end, write_end = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover (the child reports through the pipe)
        try:
            fresh = http.client()
            os.write(write_end, b"1" if fresh is not inherited and fresh is http.client() else b"0")
        finally:
            os._exit(0)
    os.close(write_end)
    verdict = os.read(read_end, 1)
    os.waitpid(child, 0)
    os.close(read_end)

    assert verdict == b"1"
    assert http.client() is inherited


def test_it_reads_retry_after_in_both_forms() -> None:
    now = dt.datetime(2025, 3, 4, 10, 0, tzinfo=dt.UTC)

    assert http.retry_after_seconds("120") == 120
    assert http.retry_after_seconds("Tue, 04 Mar 2025 10:01:30 GMT", now=now) == 90
    assert http.retry_after_seconds("Tue, 04 Mar 2025 09:00:00 GMT", now=now) == 0
    assert http.retry_after_seconds("soon") is None
    assert http.retry_after_seconds(None) is None


# --- TLS: the vetted IP is connected to, the certificate is checked on the hostname ---


def _certificate(tmp_path: Path, name: str) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = dt.datetime.now(tz=dt.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / f"{name}.pem", tmp_path / f"{name}.key"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


def _tls_receiver(tmp_path: Path, name: str, seen: list[str | None]) -> tuple[Receiver, Path]:
    cert_path, key_path = _certificate(tmp_path, name)
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_context.load_cert_chain(cert_path, key_path)
    server_context.sni_callback = lambda _sock, server_name, _ctx: seen.append(server_name)
    return Receiver(tls=server_context).start(), cert_path


def test_it_checks_the_certificate_on_the_hostname(tmp_path: Path) -> None:
    seen: list[str | None] = []
    receiver, cert_path = _tls_receiver(tmp_path, "localhost", seen)
    trusted = ssl.create_default_context(cafile=str(cert_path))
    try:
        with httpx.Client(transport=http.VettedTransport(verify=trusted)) as client:
            response = client.post(f"https://localhost:{receiver.port}/hook", content=b"{}")
    finally:
        receiver.stop()

    assert response.status_code == 200
    assert seen == ["localhost"]


def test_it_refuses_a_certificate_for_another_name(tmp_path: Path) -> None:
    seen: list[str | None] = []
    receiver, cert_path = _tls_receiver(tmp_path, "receiver.example", seen)
    trusted = ssl.create_default_context(cafile=str(cert_path))
    try:
        with (
            httpx.Client(transport=http.VettedTransport(verify=trusted)) as client,
            pytest.raises(httpx.ConnectError, match="certificate"),
        ):
            client.post(f"https://localhost:{receiver.port}/hook", content=b"{}")
    finally:
        receiver.stop()

    assert seen == ["localhost"]
    assert receiver.requests == []
