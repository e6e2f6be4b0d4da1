"""Channel providers against real local servers: an aiosmtpd SMTP sink and an HTTP webhook sink.

Nothing is mocked: the providers talk SMTP (plain, and STARTTLS + AUTH with a throwaway CA made
here with ``cryptography``) and HTTP to servers on ports the OS picks. Only time is fake: the
providers get a fake ``sleep`` (and, for the rate limit, a fake clock), so backoff and rate
limiting are checked exactly and the file stays fast.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import email.policy
import ipaddress
import json
import socket
import ssl
import threading
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from clv.campaigns.channels import (
    ChannelConfigError,
    EmailProvider,
    Message,
    Provider,
    SendResult,
    TokenBucket,
    WebhookProvider,
    providers_from_settings,
)
from clv.settings import get_settings

SENDER = "CLV Shop <news@shop.example>"
USER, PASSWORD = "clv", "s3cret-pw"


class FakeTime:
    """A clock that only moves when slept on; records every sleep."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def email_message(n: int, recipient: str | None = None, **overrides: Any) -> Message:
    fields: dict[str, Any] = {
        "idempotency_key": f"cmp7.cust{n}.email",
        "channel": "email",
        "recipient": recipient or f"customer{n}@example.com",
        "subject": f"Hello {n}",
        "body": f"Dear customer {n},\nhere is 10% off.\n",
        "metadata": {"campaign_id": "cmp7", "customer_id": f"cust{n}", "variant": "A"},
    }
    fields.update(overrides)
    return Message(**fields)


def webhook_message(n: int, channel: str = "sms") -> Message:
    return Message(
        idempotency_key=f"cmp7.cust{n}.{channel}",
        channel=channel,
        recipient=f"+4479460{n:05d}",
        subject=None,
        body=f"10% off for you, customer {n}",
        metadata={"campaign_id": "cmp7", "customer_id": f"cust{n}", "variant": "B"},
    )


def closed_port() -> int:
    """A port nothing listens on (the OS picked it free, and it is closed again)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# ------------------------------------------------------------------------------- SMTP sink


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    message: EmailMessage
    authenticated: bool
    tls: bool


@dataclass
class SinkHandler:
    """aiosmtpd handler that keeps what arrives and misbehaves as a test asks.

    ``temp_fail``: answer ``451 try later`` to that many DATA commands; ``reject``: answer
    ``550 no such user`` to these recipients; ``drop_at``: abort the connection instead of
    answering these DATA commands (1-based, counted over the sink's life since ``reset``);
    ``data_delay``: take that many seconds over each DATA (other sessions are served meanwhile),
    and count how many DATA commands were in flight at once (``max_in_flight``).
    """

    received: list[Received] = field(default_factory=list)
    sessions: list[Session] = field(default_factory=list)
    data_commands: int = 0
    temp_fail: int = 0
    reject: frozenset[str] = frozenset()
    drop_at: frozenset[int] = frozenset()
    data_delay: float = 0.0
    in_flight: int = 0
    max_in_flight: int = 0
    arrivals: list[float] = field(default_factory=list)

    def reset(
        self,
        *,
        temp_fail: int = 0,
        reject: frozenset[str] = frozenset(),
        drop_at: frozenset[int] = frozenset(),
        data_delay: float = 0.0,
    ) -> None:
        self.received = []
        self.sessions = []
        self.data_commands = 0
        self.temp_fail, self.reject, self.drop_at = temp_fail, reject, drop_at
        self.data_delay, self.in_flight, self.max_in_flight = data_delay, 0, 0
        self.arrivals = []

    async def handle_RCPT(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        # Session objects are kept alive here, so identity tells connections apart.
        if not any(known is session for known in self.sessions):
            self.sessions.append(session)
        if address in self.reject:
            return "550 5.1.1 no such user"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        self.data_commands += 1
        self.arrivals.append(time.monotonic())
        if self.data_delay:
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            await asyncio.sleep(self.data_delay)
            self.in_flight -= 1
        if self.data_commands in self.drop_at:
            assert server.transport is not None
            server.transport.abort()  # type: ignore[attr-defined]
            return "421 never seen"
        if self.temp_fail > 0:
            self.temp_fail -= 1
            return "451 4.3.0 try later"
        content = envelope.content
        assert isinstance(content, bytes)
        parsed = message_from_bytes(content, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        self.received.append(
            Received(
                mail_from=str(envelope.mail_from),
                rcpt_tos=list(envelope.rcpt_tos),
                message=parsed,
                authenticated=bool(session.authenticated),
                tls=session.ssl is not None,
            )
        )
        return f"250 2.0.0 queued as q{len(self.received)}"

    def bodies(self) -> list[str]:
        """Decoded text bodies, with the wire's CRLF line ends turned back into LF."""
        return [str(r.message.get_content()).replace("\r\n", "\n") for r in self.received]

    def keys(self) -> list[str]:
        return [str(r.message["X-CLV-Idempotency-Key"]) for r in self.received]


class EphemeralPortController(Controller):
    """aiosmtpd's ``Controller`` on a port the OS picks (``port=0``).

    The stock controller connects to ``self.port`` to check the server is up, which fails for
    port 0; read the bound port back first.
    """

    def _trigger_server(self) -> None:
        assert isinstance(self.server, asyncio.Server)
        self.port = int(self.server.sockets[0].getsockname()[1])
        super()._trigger_server()


@pytest.fixture(scope="module")
def smtp_server() -> Iterator[tuple[SinkHandler, int]]:
    handler = SinkHandler()
    controller = EphemeralPortController(
        handler, hostname="127.0.0.1", port=0, server_hostname="sink.test"
    )
    controller.start()
    try:
        yield handler, controller.port
    finally:
        controller.stop()


@pytest.fixture
def sink(smtp_server: tuple[SinkHandler, int]) -> SinkHandler:
    handler, _ = smtp_server
    handler.reset()
    return handler


@pytest.fixture
def fake_time() -> FakeTime:
    return FakeTime()


@pytest.fixture
def email_provider(
    smtp_server: tuple[SinkHandler, int], fake_time: FakeTime
) -> Iterator[EmailProvider]:
    _, port = smtp_server
    with EmailProvider(
        "127.0.0.1",
        port,
        sender=SENDER,
        timeout=5.0,
        sleep=fake_time.sleep,
        seed=7,
        local_hostname="clv.test",
    ) as provider:
        yield provider


def test_a_batch_arrives_over_one_session_with_the_key_in_message_id(
    sink: SinkHandler, email_provider: EmailProvider
) -> None:
    messages = [email_message(n) for n in range(3)]
    results = email_provider.send_batch(messages)

    assert [r.status for r in results] == ["sent"] * 3
    assert [r.idempotency_key for r in results] == [m.idempotency_key for m in messages]
    assert all(r.attempts == 1 and not r.transient for r in results)
    assert results[0].response == "250 2.0.0 queued as q1"
    assert len(sink.sessions) == 1
    first = sink.received[0]
    assert first.mail_from == "news@shop.example"
    assert first.rcpt_tos == ["customer0@example.com"]
    headers = first.message
    assert headers["Message-ID"] == "<cmp7.cust0.email@clv>"
    assert headers["X-CLV-Idempotency-Key"] == "cmp7.cust0.email"
    assert headers["From"] == SENDER
    assert headers["To"] == "customer0@example.com"
    assert headers["Subject"] == "Hello 0"
    assert headers["Date"] is not None
    assert sink.bodies()[0] == "Dear customer 0,\nhere is 10% off.\n"
    assert sink.keys() == [m.idempotency_key for m in messages]


def test_a_non_ascii_body_and_subject_arrive_intact(
    sink: SinkHandler, email_provider: EmailProvider
) -> None:
    body = "Grüße, 顧客様!\n.\nA line that is only a dot, above.\n"
    [result] = email_provider.send_batch([email_message(1, subject="Prämie für Sie", body=body)])

    assert result.sent
    assert sink.received[0].message["Subject"] == "Prämie für Sie"
    assert sink.bodies() == [body]


def test_batches_longer_than_batch_size_open_a_new_session_per_chunk(
    sink: SinkHandler, smtp_server: tuple[SinkHandler, int]
) -> None:
    _, port = smtp_server
    with EmailProvider(
        "127.0.0.1", port, sender=SENDER, batch_size=2, local_hostname="clv.test"
    ) as provider:
        results = provider.send_batch([email_message(n) for n in range(5)])

    assert all(r.sent for r in results)
    assert len(sink.sessions) == 3  # 2 + 2 + 1
    assert len(sink.received) == 5


def test_a_batch_is_spread_over_parallel_sessions_and_the_results_keep_its_order(
    sink: SinkHandler, smtp_server: tuple[SinkHandler, int]
) -> None:
    _, port = smtp_server
    sink.reset(data_delay=0.01)
    messages = [email_message(n) for n in range(80)]
    with EmailProvider(
        "127.0.0.1", port, sender=SENDER, connections=4, local_hostname="clv.test"
    ) as provider:
        results = provider.send_batch(messages)
        again = provider.send_batch(messages[:40])  # the sessions are opened again

    assert [r.idempotency_key for r in results] == [m.idempotency_key for m in messages]
    assert all(r.sent and r.attempts == 1 for r in results + again)
    assert len(sink.sessions) == 8
    assert sink.max_in_flight >= 2  # the sessions really ran at the same time
    assert sorted(sink.keys()) == sorted([m.idempotency_key for m in messages + messages[:40]])


def test_a_short_batch_stays_on_one_session_however_many_connections_are_allowed(
    sink: SinkHandler, smtp_server: tuple[SinkHandler, int]
) -> None:
    _, port = smtp_server
    with EmailProvider(
        "127.0.0.1", port, sender=SENDER, connections=8, local_hostname="clv.test"
    ) as provider:
        results = provider.send_batch([email_message(n) for n in range(15)])

    assert all(r.sent for r in results)
    assert len(sink.sessions) == 1  # 15 messages do not repay a second session


def test_a_refused_recipient_in_one_parallel_session_fails_only_that_message(
    sink: SinkHandler, smtp_server: tuple[SinkHandler, int]
) -> None:
    _, port = smtp_server
    sink.reset(reject=frozenset({"customer33@example.com"}))
    with EmailProvider(
        "127.0.0.1", port, sender=SENDER, connections=3, local_hostname="clv.test"
    ) as provider:
        results = provider.send_batch([email_message(n) for n in range(45)])

    failed = [n for n, r in enumerate(results) if not r.sent]
    assert failed == [33]
    assert results[33].response.startswith("550 5.1.1 no such user") and not results[33].transient
    assert len(sink.received) == 44
    assert len(sink.sessions) == 3


def test_parallel_sessions_share_one_rate_limit(
    sink: SinkHandler, smtp_server: tuple[SinkHandler, int]
) -> None:
    _, port = smtp_server
    with EmailProvider(
        "127.0.0.1",
        port,
        sender=SENDER,
        connections=3,
        rate_per_second=100.0,
        local_hostname="clv.test",
    ) as provider:
        results = provider.send_batch([email_message(n) for n in range(30)])

    assert all(r.sent for r in results)
    assert len(sink.sessions) == 3
    # 30 transactions at 100/s in all: 29 intervals of 10 ms between the first and the last
    # acquisition, less the first session's connect and EHLO, which the first DATA waits for
    # (three unshared limits would let the 30 through in about 0.1 s).
    assert sink.arrivals[-1] - sink.arrivals[0] >= 0.2


def test_a_server_that_is_down_fails_every_parallel_part_as_transient(
    fake_time: FakeTime,
) -> None:
    with EmailProvider(
        "127.0.0.1",
        closed_port(),
        sender=SENDER,
        max_attempts=2,
        connections=4,
        sleep=fake_time.sleep,
        local_hostname="clv.test",
    ) as provider:
        results = provider.send_batch([email_message(n) for n in range(40)])

    assert len(results) == 40
    assert all(r.status == "failed" and r.transient for r in results)
    # Each of the four sessions tried its first message twice and gave up on the rest.
    assert sorted(r.attempts for r in results if r.attempts) == [2, 2, 2, 2]


def test_451_is_retried_with_jittered_backoff_then_succeeds(
    sink: SinkHandler, email_provider: EmailProvider, fake_time: FakeTime
) -> None:
    sink.reset(temp_fail=2)
    [result] = email_provider.send_batch([email_message(1)])

    assert result.sent
    assert result.attempts == 3
    assert sink.data_commands == 3
    assert sink.keys() == ["cmp7.cust1.email"]  # delivered once
    # Full jitter: attempt k waits uniform(0, min(backoff_max, 0.5 * 2 ** (k - 1))).
    assert len(fake_time.sleeps) == 2
    assert 0 <= fake_time.sleeps[0] <= 0.5
    assert 0 <= fake_time.sleeps[1] <= 1.0


def test_the_same_seed_gives_the_same_backoff_delays(
    sink: SinkHandler, smtp_server: tuple[SinkHandler, int]
) -> None:
    _, port = smtp_server
    runs = []
    for _ in range(2):
        sink.reset(temp_fail=3)
        fake = FakeTime()
        with EmailProvider(
            "127.0.0.1", port, sender=SENDER, sleep=fake.sleep, seed=3, local_hostname="clv.test"
        ) as provider:
            assert provider.send_batch([email_message(1)])[0].sent
        runs.append(fake.sleeps)

    assert runs[0] == runs[1]
    assert len(runs[0]) == 3


def test_451_forever_fails_as_transient_after_max_attempts(
    sink: SinkHandler, email_provider: EmailProvider
) -> None:
    sink.reset(temp_fail=100)
    [result] = email_provider.send_batch([email_message(1)])

    assert result.status == "failed"
    assert result.transient
    assert result.attempts == email_provider.max_attempts == 4
    assert result.response == "451 4.3.0 try later (DATA)"
    assert sink.received == []


def test_550_fails_only_that_message_and_is_not_retried(
    sink: SinkHandler, email_provider: EmailProvider, fake_time: FakeTime
) -> None:
    sink.reset(reject=frozenset({"ghost@example.com"}))
    messages = [email_message(1), email_message(2, "ghost@example.com"), email_message(3)]
    results = email_provider.send_batch(messages)

    assert [r.status for r in results] == ["sent", "failed", "sent"]
    refused = results[1]
    assert refused.attempts == 1
    assert not refused.transient
    assert refused.response == "550 5.1.1 no such user (RCPT TO)"
    assert fake_time.sleeps == []
    assert sink.keys() == ["cmp7.cust1.email", "cmp7.cust3.email"]
    assert len(sink.sessions) == 1  # RSET after the refusal keeps the session usable


def test_a_malformed_recipient_fails_that_message_without_reaching_the_server(
    sink: SinkHandler, email_provider: EmailProvider
) -> None:
    messages = [email_message(1, "a@example.com\r\nBcc: all@example.com"), email_message(2)]
    results = email_provider.send_batch(messages)

    assert [r.status for r in results] == ["failed", "sent"]
    assert results[0].attempts == 0
    assert not results[0].transient
    assert results[0].response.startswith("invalid message: recipient")
    assert [r.rcpt_tos for r in sink.received] == [["customer2@example.com"]]


def test_a_message_for_another_channel_is_refused_without_sending(
    sink: SinkHandler, email_provider: EmailProvider
) -> None:
    [result] = email_provider.send_batch([webhook_message(1, "sms")])

    assert result.status == "failed"
    assert not result.transient
    assert "'sms'" in result.response
    assert sink.sessions == []


def test_a_dropped_connection_is_replaced_and_the_message_delivered_once(
    sink: SinkHandler, email_provider: EmailProvider, fake_time: FakeTime
) -> None:
    sink.reset(drop_at=frozenset({2}))
    results = email_provider.send_batch([email_message(n) for n in range(3)])

    assert [r.status for r in results] == ["sent"] * 3
    assert [r.attempts for r in results] == [1, 2, 1]
    assert len(sink.sessions) == 2
    assert sink.keys() == ["cmp7.cust0.email", "cmp7.cust1.email", "cmp7.cust2.email"]
    # A reused connection found closed is replaced at once, without a backoff.
    assert fake_time.sleeps == []


def test_a_server_that_is_down_fails_the_batch_as_transient_quickly(
    fake_time: FakeTime,
) -> None:
    provider = EmailProvider(
        "127.0.0.1",
        closed_port(),
        sender=SENDER,
        max_attempts=3,
        sleep=fake_time.sleep,
        local_hostname="clv.test",
    )
    started = time.monotonic()
    with provider:
        results = provider.send_batch([email_message(n) for n in range(50)])

    assert time.monotonic() - started < 2.0
    assert all(r.status == "failed" and r.transient for r in results)
    assert results[0].attempts == 3
    assert "cannot connect to 127.0.0.1" in results[0].response
    assert "ConnectionRefusedError" in results[0].response
    # The rest of the batch is not tried against a server that is down; the outbox retries.
    assert {r.attempts for r in results[1:]} == {0}
    assert results[1].response.startswith("not attempted: cannot connect")
    assert len(fake_time.sleeps) == 2


def test_the_rate_limit_spaces_transactions_by_one_over_the_rate(
    sink: SinkHandler, smtp_server: tuple[SinkHandler, int], fake_time: FakeTime
) -> None:
    _, port = smtp_server
    with EmailProvider(
        "127.0.0.1",
        port,
        sender=SENDER,
        rate_per_second=4.0,
        sleep=fake_time.sleep,
        clock=fake_time.clock,
        local_hostname="clv.test",
    ) as provider:
        results = provider.send_batch([email_message(n) for n in range(9)])

    assert all(r.sent for r in results)
    # 9 messages at 4/s: the first at once, then 8 waits of 0.25 s.
    assert fake_time.sleeps == pytest.approx([0.25] * 8)
    assert fake_time.now - 1000.0 == pytest.approx(2.0)
    assert results[1].elapsed_s == pytest.approx(0.25)


@pytest.mark.parametrize(
    ("rate", "burst", "n", "expected_s"),
    [(10.0, 1, 1, 0.0), (10.0, 1, 11, 1.0), (2.0, 1, 5, 2.0), (2.0, 3, 5, 1.0)],
    ids=["one-is-free", "eleven-at-10-per-s", "five-at-2-per-s", "burst-of-3"],
)
def test_token_bucket_takes_the_expected_fake_time(
    rate: float, burst: int, n: int, expected_s: float
) -> None:
    fake = FakeTime()
    bucket = TokenBucket(rate, burst=burst, clock=fake.clock, sleep=fake.sleep)
    for _ in range(n):
        bucket.acquire()

    assert fake.now - 1000.0 == pytest.approx(expected_s)


def test_token_bucket_refills_while_idle() -> None:
    fake = FakeTime()
    bucket = TokenBucket(1.0, clock=fake.clock, sleep=fake.sleep)
    bucket.acquire()
    fake.now += 5.0  # idle longer than the interval

    assert bucket.acquire() == 0.0
    assert bucket.acquire() == pytest.approx(1.0)


# -------------------------------------------------------------------------- STARTTLS + AUTH


@dataclass(frozen=True)
class Pki:
    ca_pem: bytes
    cert_path: Path
    key_path: Path


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    """A throwaway CA and a server certificate for 127.0.0.1 signed by it."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "clv test CA")])
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    folder = tmp_path_factory.mktemp("pki")
    cert_path, key_path = folder / "server.pem", folder / "server.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return Pki(
        ca_pem=ca_cert.public_bytes(serialization.Encoding.PEM),
        cert_path=cert_path,
        key_path=key_path,
    )


def authenticator(
    server: SMTP, session: Session, envelope: Envelope, mechanism: str, auth_data: object
) -> AuthResult:
    valid = isinstance(auth_data, LoginPassword) and (auth_data.login, auth_data.password) == (
        USER.encode(),
        PASSWORD.encode(),
    )
    return AuthResult(success=valid, handled=False)


@pytest.fixture(scope="module")
def tls_smtp_server(pki: Pki) -> Iterator[tuple[SinkHandler, int]]:
    """A sink that requires STARTTLS, offers AUTH only over TLS and requires it."""
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_context.load_cert_chain(pki.cert_path, pki.key_path)
    handler = SinkHandler()
    controller = EphemeralPortController(
        handler,
        hostname="127.0.0.1",
        port=0,
        server_hostname="sink.test",
        tls_context=server_context,
        require_starttls=True,
        auth_require_tls=True,
        auth_required=True,
        authenticator=authenticator,
    )
    controller.start()
    try:
        yield handler, controller.port
    finally:
        controller.stop()


@pytest.fixture
def tls_sink(tls_smtp_server: tuple[SinkHandler, int]) -> SinkHandler:
    handler, _ = tls_smtp_server
    handler.reset()
    return handler


def tls_provider(port: int, pki: Pki | None, **overrides: Any) -> EmailProvider:
    options: dict[str, Any] = {
        "username": USER,
        "password": PASSWORD,
        "starttls": True,
        "sender": SENDER,
        "timeout": 5.0,
        "sleep": FakeTime().sleep,
        "local_hostname": "clv.test",
        "ssl_context": None
        if pki is None
        else ssl.create_default_context(cadata=pki.ca_pem.decode()),
    }
    options.update(overrides)
    return EmailProvider("127.0.0.1", port, **options)


def test_starttls_and_auth_deliver_over_an_encrypted_authenticated_session(
    tls_sink: SinkHandler, tls_smtp_server: tuple[SinkHandler, int], pki: Pki
) -> None:
    _, port = tls_smtp_server
    with tls_provider(port, pki) as provider:
        results = provider.send_batch([email_message(1), email_message(2)])

    assert [r.status for r in results] == ["sent", "sent"]
    assert [(r.tls, r.authenticated) for r in tls_sink.received] == [(True, True)] * 2
    assert len(tls_sink.sessions) == 1
    assert PASSWORD not in repr(provider)


def test_parallel_sessions_each_negotiate_starttls_and_auth(
    tls_sink: SinkHandler, tls_smtp_server: tuple[SinkHandler, int], pki: Pki
) -> None:
    _, port = tls_smtp_server
    with tls_provider(port, pki, connections=2) as provider:
        results = provider.send_batch([email_message(n) for n in range(24)])

    assert all(r.sent for r in results)
    assert len(tls_sink.sessions) == 2
    assert [(r.tls, r.authenticated) for r in tls_sink.received] == [(True, True)] * 24


def test_a_wrong_password_fails_the_batch_permanently_after_one_try(
    tls_sink: SinkHandler, tls_smtp_server: tuple[SinkHandler, int], pki: Pki
) -> None:
    _, port = tls_smtp_server
    with tls_provider(port, pki, password="wrong") as provider:
        results = provider.send_batch([email_message(n) for n in range(3)])

    assert all(r.status == "failed" and not r.transient for r in results)
    assert [r.attempts for r in results] == [1, 0, 0]
    assert results[0].response.startswith("session setup: 535")
    assert tls_sink.received == []


def test_without_starttls_credentials_are_never_sent_in_clear(
    tls_sink: SinkHandler, tls_smtp_server: tuple[SinkHandler, int]
) -> None:
    # The server offers AUTH only after STARTTLS, so smtplib refuses to log in at all.
    _, port = tls_smtp_server
    with tls_provider(port, None, starttls=False) as provider:
        [result] = provider.send_batch([email_message(1)])

    assert result.status == "failed"
    assert not result.transient
    assert result.attempts == 1
    assert "does not support it: SMTP AUTH extension not supported" in result.response


def test_an_untrusted_server_certificate_is_a_permanent_failure(
    tls_sink: SinkHandler, tls_smtp_server: tuple[SinkHandler, int]
) -> None:
    _, port = tls_smtp_server
    with tls_provider(port, None) as provider:  # the system CAs do not know the test CA
        [result] = provider.send_batch([email_message(1)])

    assert result.status == "failed"
    assert not result.transient
    assert "SSLCertVerificationError" in result.response
    assert tls_sink.received == []


# ---------------------------------------------------------------------------- webhook sink


@dataclass(frozen=True)
class Reply:
    status: int = 200
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes = b'{"ok": true}'
    delay_s: float = 0.0


@dataclass(frozen=True)
class Request:
    path: str
    headers: dict[str, str]
    body: dict[str, Any]


class WebhookSink:
    """Records requests; answers from a per-test script, then with the default reply."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.requests: list[Request] = []
        self.script: deque[Reply] = deque()
        self.default = Reply()

    def reset(self, *script: Reply, default: Reply | None = None) -> None:
        with self.lock:
            self.requests = []
            self.script = deque(script)
            self.default = default or Reply()

    def record(self, request: Request) -> Reply:
        with self.lock:
            self.requests.append(request)
            return self.script.popleft() if self.script else self.default


def handler_for(sink: WebhookSink) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as real gateways do

        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            headers = {name.lower(): value for name, value in self.headers.items()}
            reply = sink.record(Request(self.path, headers, json.loads(raw)))
            time.sleep(reply.delay_s)
            try:
                self.send_response(reply.status)
                for name, value in reply.headers:
                    self.send_header(name, value)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(reply.body)))
                self.end_headers()
                self.wfile.write(reply.body)
            except OSError:  # the client timed out and went away
                pass

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


@pytest.fixture(scope="module")
def webhook_server() -> Iterator[tuple[WebhookSink, str]]:
    sink = WebhookSink()
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler_for(sink))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield sink, f"http://127.0.0.1:{server.server_address[1]}/send"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture
def hook(webhook_server: tuple[WebhookSink, str], monkeypatch: pytest.MonkeyPatch) -> WebhookSink:
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")  # httpx honours *_PROXY variables
    sink, _ = webhook_server
    sink.reset()
    return sink


@pytest.fixture
def sms_provider(
    webhook_server: tuple[WebhookSink, str], hook: WebhookSink, fake_time: FakeTime
) -> Iterator[WebhookProvider]:
    _, url = webhook_server
    with WebhookProvider(
        url,
        name="sms",
        timeout=0.3,
        headers={"Authorization": "Bearer t0ken"},
        sleep=fake_time.sleep,
        seed=1,
    ) as provider:
        yield provider


def test_webhook_posts_the_json_body_with_the_idempotency_key_header(
    hook: WebhookSink, sms_provider: WebhookProvider
) -> None:
    message = webhook_message(1)
    [result] = sms_provider.send_batch([message])

    assert result.sent
    assert result.attempts == 1
    assert result.response == '200 OK: {"ok": true}'
    [request] = hook.requests
    assert request.path == "/send"
    assert request.headers["idempotency-key"] == "cmp7.cust1.sms"
    assert request.headers["authorization"] == "Bearer t0ken"
    assert request.headers["content-type"] == "application/json"
    assert request.body == {
        "idempotency_key": "cmp7.cust1.sms",
        "recipient": "+447946000001",
        "body": "10% off for you, customer 1",
        "metadata": {"campaign_id": "cmp7", "customer_id": "cust1", "variant": "B"},
    }


def test_webhook_500_twice_then_200_is_sent_on_the_third_try_with_the_same_key(
    hook: WebhookSink, sms_provider: WebhookProvider, fake_time: FakeTime
) -> None:
    hook.reset(Reply(500, body=b"oops"), Reply(503, body=b"busy"))
    [result] = sms_provider.send_batch([webhook_message(1)])

    assert result.sent
    assert result.attempts == 3
    assert [r.headers["idempotency-key"] for r in hook.requests] == ["cmp7.cust1.sms"] * 3
    assert len(fake_time.sleeps) == 2
    assert 0 <= fake_time.sleeps[0] <= 0.5
    assert 0 <= fake_time.sleeps[1] <= 1.0


@pytest.mark.parametrize(
    ("retry_after", "expected_wait_s"),
    [("0", 0.0), ("2", 2.0), ("30", 8.0)],
    ids=["zero", "two-seconds", "capped-by-backoff-max"],
)
def test_webhook_429_waits_as_retry_after_says_then_retries(
    hook: WebhookSink,
    sms_provider: WebhookProvider,
    fake_time: FakeTime,
    retry_after: str,
    expected_wait_s: float,
) -> None:
    hook.reset(Reply(429, headers=(("Retry-After", retry_after),), body=b"slow down"))
    [result] = sms_provider.send_batch([webhook_message(1)])

    assert result.sent
    assert result.attempts == 2
    assert fake_time.sleeps == ([expected_wait_s] if expected_wait_s else [])


def test_webhook_400_is_permanent_and_not_retried(
    hook: WebhookSink, sms_provider: WebhookProvider, fake_time: FakeTime
) -> None:
    hook.reset(default=Reply(400, body=b'{"error": "invalid phone number"}'))
    results = sms_provider.send_batch([webhook_message(1), webhook_message(2)])

    assert [r.status for r in results] == ["failed", "failed"]
    assert all(r.attempts == 1 and not r.transient for r in results)
    assert results[0].response == '400 Bad Request: {"error": "invalid phone number"}'
    assert len(hook.requests) == 2  # one each: the batch goes on after a permanent failure
    assert fake_time.sleeps == []


def test_webhook_500_forever_fails_as_transient_after_max_attempts(
    hook: WebhookSink, sms_provider: WebhookProvider
) -> None:
    hook.reset(default=Reply(500, body=b"down for maintenance"))
    [result] = sms_provider.send_batch([webhook_message(1)])

    assert result.status == "failed"
    assert result.transient
    assert result.attempts == 4
    assert result.response == "500 Internal Server Error: down for maintenance"
    assert len(hook.requests) == 4


def test_webhook_timeout_is_transient_and_retried_with_the_same_key(
    hook: WebhookSink, sms_provider: WebhookProvider
) -> None:
    hook.reset(Reply(delay_s=1.0))  # longer than the provider's 0.3 s timeout
    [result] = sms_provider.send_batch([webhook_message(1)])

    assert result.sent
    assert result.attempts == 2
    # The slow request may have been processed: the key lets the gateway drop the duplicate.
    assert [r.headers["idempotency-key"] for r in hook.requests] == ["cmp7.cust1.sms"] * 2


def test_webhook_that_always_times_out_fails_as_transient(
    hook: WebhookSink, webhook_server: tuple[WebhookSink, str]
) -> None:
    _, url = webhook_server
    hook.reset(default=Reply(delay_s=0.5))
    with WebhookProvider(
        url, name="in_app", timeout=0.1, max_attempts=2, sleep=FakeTime().sleep
    ) as provider:
        [result] = provider.send_batch([webhook_message(1, "in_app")])

    assert result.status == "failed"
    assert result.transient
    assert result.attempts == 2
    assert result.response.startswith("timed out after 0.1 s: ReadTimeout")


def test_webhook_that_is_down_fails_the_batch_as_transient_quickly(
    hook: WebhookSink, fake_time: FakeTime
) -> None:
    with WebhookProvider(
        f"http://127.0.0.1:{closed_port()}/send", name="sms", sleep=fake_time.sleep
    ) as provider:
        results = provider.send_batch([webhook_message(n) for n in range(20)])

    assert all(r.status == "failed" and r.transient for r in results)
    assert [r.attempts for r in results[:3]] == [4, 0, 0]
    assert "ConnectError" in results[0].response
    assert len(fake_time.sleeps) == 3


def test_a_client_passed_in_is_left_open_and_one_made_here_is_closed(
    webhook_server: tuple[WebhookSink, str], hook: WebhookSink
) -> None:
    import httpx

    _, url = webhook_server
    with httpx.Client() as client:
        with WebhookProvider(url, name="sms", client=client) as provider:
            assert provider.send_batch([webhook_message(1)])[0].sent
        assert not client.is_closed
        assert client.post(url, json={}).status_code == 200
    own = WebhookProvider(url, name="sms")
    own.close()
    assert own._client.is_closed


def test_webhook_provider_refuses_a_url_that_is_not_http() -> None:
    with pytest.raises(ValueError, match="must be http:// or https://"):
        WebhookProvider("ftp://gateway.example/send", name="sms")


# ------------------------------------------------------------------------- message contract


@pytest.mark.parametrize(
    "key",
    ["", "cmp7:cust1:email", "cmp7 cust1", "a@b", ".leading", "x" * 201, "line\nbreak"],
    ids=["empty", "colon", "space", "at-sign", "leading-dot", "too-long", "newline"],
)
def test_a_key_that_would_not_survive_a_message_id_is_refused(key: str) -> None:
    with pytest.raises(ValueError, match="idempotency_key"):
        email_message(1, idempotency_key=key)


@pytest.mark.parametrize(
    "key", ["cmp7.cust1.email", "9f86d081884c7d659a2feaa0c55ad015", "a-b_c+d=e/f"], ids=str
)
def test_keys_of_dot_atom_text_are_accepted(key: str) -> None:
    assert email_message(1, idempotency_key=key).idempotency_key == key


def test_message_metadata_is_read_only() -> None:
    metadata = {"campaign_id": "cmp7"}
    message = email_message(1, metadata=metadata)
    metadata["campaign_id"] = "changed"

    assert message.metadata["campaign_id"] == "cmp7"
    with pytest.raises(TypeError):
        message.metadata["variant"] = "B"  # type: ignore[index]


# ---------------------------------------------------------------------------------- settings


def test_no_channel_settings_means_no_providers_and_asking_names_the_variable() -> None:
    assert providers_from_settings() == {}
    with pytest.raises(ChannelConfigError, match="set CLV_SMTP_HOST"):
        providers_from_settings(channels=["email"])
    with pytest.raises(ChannelConfigError) as raised:
        providers_from_settings(channels=["sms", "in_app"])
    assert "CLV_SMS_WEBHOOK_URL" in str(raised.value)
    assert "CLV_INAPP_WEBHOOK_URL" in str(raised.value)
    assert isinstance(raised.value, ValueError)


def test_an_unknown_channel_is_a_config_error() -> None:
    with pytest.raises(ChannelConfigError, match=r"unknown channel.*'fax'.*email, sms, in_app"):
        providers_from_settings(channels=["fax"])


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({"CLV_SMTP_HOST": "mail.example", "CLV_SMTP_PASSWORD": "pw"}, "CLV_SMTP_USER"),
        ({"CLV_SMTP_HOST": "mail.example", "CLV_SMTP_FROM": "nobody"}, "CLV_SMTP_"),
        ({"CLV_SMS_WEBHOOK_URL": "ftp://gateway.example"}, "CLV_SMS_WEBHOOK_URL"),
    ],
    ids=["password-without-user", "from-not-an-address", "webhook-not-http"],
)
def test_unusable_channel_settings_name_the_variable(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], variable: str
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()

    with pytest.raises(ChannelConfigError, match=variable):
        providers_from_settings()


def test_providers_built_from_the_environment_deliver(
    monkeypatch: pytest.MonkeyPatch,
    sink: SinkHandler,
    smtp_server: tuple[SinkHandler, int],
    hook: WebhookSink,
    webhook_server: tuple[WebhookSink, str],
) -> None:
    _, port = smtp_server
    _, url = webhook_server
    monkeypatch.setenv("CLV_SMTP_HOST", "127.0.0.1")
    monkeypatch.setenv("CLV_SMTP_PORT", str(port))
    monkeypatch.setenv("CLV_SMTP_FROM", "Offers <offers@shop.example>")
    monkeypatch.setenv("CLV_SMTP_CONNECTIONS", "2")
    monkeypatch.setenv("CLV_SMS_WEBHOOK_URL", url)
    monkeypatch.setenv("CLV_INAPP_WEBHOOK_URL", url + "/in-app")
    get_settings.cache_clear()

    providers = providers_from_settings()
    try:
        assert sorted(providers) == ["email", "in_app", "sms"]
        assert all(isinstance(p, Provider) for p in providers.values())
        assert [p.name for p in providers.values()] == list(providers)
        assert isinstance(providers["email"], EmailProvider)
        assert providers["email"].connections == 2
        email_results = providers["email"].send_batch([email_message(1)])
        sms_results = providers["sms"].send_batch([webhook_message(1, "sms")])
        in_app_results = providers["in_app"].send_batch([webhook_message(1, "in_app")])
    finally:
        for provider in providers.values():
            provider.close()

    results: list[SendResult] = email_results + sms_results + in_app_results
    assert all(r.sent for r in results)
    assert sink.received[0].message["From"] == "Offers <offers@shop.example>"
    assert [r.path for r in hook.requests] == ["/send", "/send/in-app"]


def test_the_smtp_password_from_the_environment_stays_secret(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CLV_SMTP_HOST", "mail.example")
    monkeypatch.setenv("CLV_SMTP_USER", USER)
    monkeypatch.setenv("CLV_SMTP_PASSWORD", PASSWORD)
    monkeypatch.setenv("CLV_SMTP_STARTTLS", "true")
    get_settings.cache_clear()

    settings = get_settings()
    [provider] = providers_from_settings(settings, channels=["email"]).values()

    assert isinstance(provider, EmailProvider)
    assert (provider.username, provider.starttls, provider.port) == (USER, True, 25)
    assert provider.connections == 4  # CLV_SMTP_CONNECTIONS' default
    assert PASSWORD not in repr(settings)
    assert PASSWORD not in repr(provider)
