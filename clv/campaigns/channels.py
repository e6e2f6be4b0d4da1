"""Channel providers: the one module that talks to the outside systems that deliver messages.

Email goes out over SMTP (:class:`EmailProvider`), SMS and in-app messages through HTTP webhooks
(:class:`WebhookProvider`). The campaign sender hands a provider a batch of :class:`Message` and
gets back one :class:`SendResult` per message, in the same order; a failed message is a result,
never an exception, so the results of the messages already delivered are never lost.

Exactly-once delivery is the outbox's job; the providers do their part by passing each message's
idempotency key to the provider side, where a duplicate can be recognised:

* email: ``Message-ID: <{key}@clv>`` and an ``X-CLV-Idempotency-Key`` header;
* webhooks: an ``Idempotency-Key`` header and an ``idempotency_key`` field in the JSON body.

Retry policy, the same for both providers: a message is tried at most ``max_attempts`` times.
Transient failures (SMTP 4xx replies, dropped connections, refused connections and timeouts;
HTTP 408, 429 and 5xx, network errors and timeouts) are retried after an exponential backoff with
full jitter, ``uniform(0, min(backoff_max, backoff_base * 2 ** (attempt - 1)))`` seconds, or after
the server's ``Retry-After`` (capped by ``backoff_max``). Permanent failures (SMTP 5xx, HTTP 4xx
other than 408 and 429, a message that cannot be built) are not retried. When the server cannot
be reached at all (or refuses the session: bad credentials, no STARTTLS), the rest of the batch
is not tried; those messages fail with ``attempts == 0`` and the same ``transient`` flag, so the
outbox retries them later instead of hammering a server that is down.
"""

from __future__ import annotations

import email.errors
import email.policy
import email.utils
import functools
import json
import logging
import math
import random
import re
import smtplib
import socket
import ssl
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from email.headerregistry import BaseHeader, HeaderRegistry
from email.message import EmailMessage
from types import MappingProxyType, TracebackType
from typing import TYPE_CHECKING, Generic, Literal, Protocol, Self, TypeVar, runtime_checkable

import httpx

from clv.campaigns.errors import CampaignError

if TYPE_CHECKING:
    from clv.settings import Settings

__all__ = [
    "CHANNELS",
    "ChannelConfigError",
    "EmailProvider",
    "Message",
    "Provider",
    "SendResult",
    "SendStatus",
    "TokenBucket",
    "WebhookProvider",
    "providers_from_settings",
]

logger = logging.getLogger(__name__)

#: The channels :func:`providers_from_settings` knows, in that order.
CHANNELS: tuple[str, ...] = ("email", "sms", "in_app")

SendStatus = Literal["sent", "failed"]

# RFC 5322 dot-atom text: what the left part of a Message-ID may hold. Anything else (":" or a
# space, say) is silently cut by the email package's header parser, which would break the
# de-duplication that the Message-ID is there for.
_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_IDEMPOTENCY_KEY = re.compile(rf"{_ATEXT}(?:\.{_ATEXT})*")
_MAX_KEY_LENGTH = 200
# How much of a webhook's response body a result keeps.
_MAX_RESPONSE_BODY = 200
# A batch is split over parallel SMTP sessions only in parts of at least this many messages:
# a session costs a connect, EHLO and QUIT, which a few messages do not repay.
_MIN_MESSAGES_PER_CONNECTION = 10


class ChannelConfigError(CampaignError):
    """A channel is not configured, or configured wrongly; the message names the setting to fix.

    A :class:`~clv.campaigns.errors.CampaignError`, hence a ``ValueError``: the CLI prints the
    message and exits with status 2.
    """


@dataclass(frozen=True)
class Message:
    """One message to one recipient on one channel.

    Attributes
    ----------
    idempotency_key : str
        Unique per (campaign, customer, channel); the provider side uses it to drop duplicates.
        RFC 5322 dot-atom text (letters, digits, ``.`` between atoms and ``!#$%&'*+/=?^_`{|}~-``;
        no ``:``, ``@`` or space), at most 200 characters, e.g. a hex digest or
        ``cmp42.cust1007.email``.
    channel : str
        ``"email"``, ``"sms"`` or ``"in_app"``; a provider refuses messages for another channel.
    recipient : str
        Email address, phone number or in-app user id.
    subject : str or None
        Email subject; ignored by webhooks.
    body : str
        Plain-text body.
    metadata : Mapping of str to str
        ``campaign_id``, ``customer_id``, ``variant``; sent in webhook bodies, kept read-only.

    Raises
    ------
    ValueError
        If ``idempotency_key`` is not dot-atom text of at most 200 characters.
    """

    idempotency_key: str
    channel: str
    recipient: str
    subject: str | None
    body: str
    metadata: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        key = self.idempotency_key
        if len(key) > _MAX_KEY_LENGTH or not _IDEMPOTENCY_KEY.fullmatch(key):
            raise ValueError(
                f"idempotency_key {key[:_MAX_KEY_LENGTH]!r} is not usable: it must be 1 to "
                f"{_MAX_KEY_LENGTH} characters of RFC 5322 dot-atom text (letters, digits, "
                "'.' between parts and !#$%&'*+/=?^_`{|}~-; no ':', '@' or spaces)"
            )
        object.__setattr__(self, "metadata", MappingProxyType(dict(self.metadata)))


@dataclass(frozen=True)
class SendResult:
    """What became of one message.

    Attributes
    ----------
    idempotency_key : str
        The message's key.
    status : {"sent", "failed"}
        ``"sent"``: the provider side accepted the message.
    attempts : int
        How many times it was tried; 0 when the batch stopped before it (server unreachable).
    response : str
        The provider's last reply: SMTP code and text, HTTP status and the start of the body,
        or what went wrong on the way (``"connection refused: ..."``).
    transient : bool
        Whether the last failure was transient, i.e. worth trying again later; ``False`` if sent.
    elapsed_s : float
        Time spent on the message, retries and rate-limit waits included (provider's clock).
    """

    idempotency_key: str
    status: SendStatus
    attempts: int
    response: str
    transient: bool
    elapsed_s: float

    @property
    def sent(self) -> bool:
        """Whether the message was accepted by the provider side."""
        return self.status == "sent"


@runtime_checkable
class Provider(Protocol):
    """Delivers messages of one channel; a context manager that closes its connections."""

    @property
    def name(self) -> str:
        """The channel it serves: ``"email"``, ``"sms"`` or ``"in_app"``."""
        ...

    def send_batch(self, messages: Sequence[Message]) -> list[SendResult]:
        """One result per message, same order; a per-message failure is a result, not an error."""
        ...

    def close(self) -> None:
        """Release connections; the provider is not used afterwards."""
        ...

    def __enter__(self) -> Self: ...

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...


class TokenBucket:
    """Rate limiter: at most ``rate_per_second`` acquisitions per second, ``burst`` at once.

    Implemented as the generic cell rate algorithm (a token bucket kept as one "theoretical
    arrival time"), so it works with a fake clock and a fake sleep that does not advance it.
    Safe to share between threads: each acquisition reserves its slot under a lock, then sleeps
    outside it.

    Parameters
    ----------
    rate_per_second : float
        Sustained rate, > 0.
    burst : int
        Acquisitions allowed back to back before the rate applies (bucket capacity), >= 1.
    clock : callable
        Monotonic clock in seconds.
    sleep : callable
        Called with the number of seconds to wait.
    """

    def __init__(
        self,
        rate_per_second: float,
        *,
        burst: int = 1,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not (rate_per_second > 0 and math.isfinite(rate_per_second)):
            raise ValueError(f"rate_per_second must be a positive number, got {rate_per_second}")
        if burst < 1:
            raise ValueError(f"burst must be at least 1, got {burst}")
        self.rate_per_second = float(rate_per_second)
        self.burst = burst
        self._clock = clock
        self._sleep = sleep
        self._interval = 1.0 / self.rate_per_second
        self._arrival = -math.inf
        self._lock = threading.Lock()

    def acquire(self) -> float:
        """Wait until the rate allows one more acquisition; return the seconds waited."""
        with self._lock:
            now = self._clock()
            arrival = max(self._arrival, now)
            wait = max(arrival - now - (self.burst - 1) * self._interval, 0.0)
            self._arrival = arrival + self._interval
        if wait > 0:
            self._sleep(wait)
        return wait


@dataclass(frozen=True)
class _Outcome:
    """One attempt's result, as the retry loop needs it."""

    sent: bool
    response: str
    transient: bool = False
    # Seconds the server asked to wait before the next attempt (HTTP Retry-After).
    retry_after: float | None = None
    # Retry at once: a reused connection was found closed, not a sign of an overloaded server.
    retry_now: bool = False
    # If this is the message's last outcome and it failed, do not try the rest of the batch:
    # the server could not be reached or refused the session, as it would for every message.
    stops_batch: bool = False


P = TypeVar("P")


class _RetryingProvider(ABC, Generic[P]):
    """The batch loop, retries, backoff and rate limit shared by the providers.

    Subclasses turn a message into what they send (``_prepare``, once per message) and make
    one attempt (``_attempt``); ``_end_batch`` runs after every batch.
    """

    def __init__(
        self,
        *,
        name: str,
        rate_per_second: float | None,
        max_attempts: int,
        backoff_base: float,
        backoff_max: float,
        sleep: Callable[[float], None],
        clock: Callable[[], float],
        seed: int | None,
    ) -> None:
        if max_attempts < 1:
            raise ValueError(f"max_attempts must be at least 1, got {max_attempts}")
        if backoff_base < 0 or backoff_max < 0:
            raise ValueError(
                f"backoff_base and backoff_max must be >= 0, got {backoff_base}, {backoff_max}"
            )
        self._name = name
        self.max_attempts = max_attempts
        self.backoff_base = float(backoff_base)
        self.backoff_max = float(backoff_max)
        self._sleep = sleep
        self._clock = clock
        self._rng = random.Random(seed)
        self._bucket = (
            None
            if rate_per_second is None
            else TokenBucket(rate_per_second, clock=clock, sleep=sleep)
        )

    @property
    def name(self) -> str:
        """The channel this provider serves."""
        return self._name

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    @abstractmethod
    def close(self) -> None:
        """Release connections."""

    @abstractmethod
    def _prepare(self, message: Message) -> P:
        """What to send for ``message``; ``ValueError`` if it cannot be sent at all."""

    @abstractmethod
    def _attempt(self, message: Message, prepared: P) -> _Outcome:
        """Try once; never raise for a failure of this message."""

    def _end_batch(self) -> None:
        """Called after every batch, even one cut short by an exception."""

    def _after_unexpected_error(self) -> None:
        """Called after an attempt raised something unexpected (drop connections, say)."""

    def send_batch(self, messages: Sequence[Message]) -> list[SendResult]:
        """Send ``messages`` in order; return one result per message, in the same order.

        Parameters
        ----------
        messages : sequence of Message
            Messages for this provider's channel; a message for another channel fails
            (permanently) without being sent.

        Returns
        -------
        list of SendResult
            ``results[i]`` is the fate of ``messages[i]``.
        """
        results: list[SendResult] = []
        stopped: _Outcome | None = None
        try:
            for message in messages:
                if stopped is not None:
                    results.append(
                        SendResult(
                            idempotency_key=message.idempotency_key,
                            status="failed",
                            attempts=0,
                            response=f"not attempted: {stopped.response}",
                            transient=stopped.transient,
                            elapsed_s=0.0,
                        )
                    )
                    continue
                result, last = self._send_one(message)
                results.append(result)
                if not last.sent and last.stops_batch:
                    stopped = last
                    logger.warning(
                        "%s: %d message(s) of the batch not attempted: %s",
                        self.name,
                        len(messages) - len(results),
                        last.response,
                    )
        finally:
            self._end_batch()
        return results

    def _send_one(self, message: Message) -> tuple[SendResult, _Outcome]:
        start = self._clock()
        if message.channel != self.name:
            outcome = _Outcome(
                sent=False,
                response=f"message for channel {message.channel!r} given to the "
                f"{self.name!r} provider",
            )
            return self._result(message, outcome, attempts=0, start=start), outcome
        try:
            prepared = self._prepare(message)
        except ValueError as err:
            outcome = _Outcome(sent=False, response=f"invalid message: {err}")
            return self._result(message, outcome, attempts=0, start=start), outcome
        except Exception as err:
            logger.exception(
                "%s: unexpected error preparing %s", self.name, message.idempotency_key
            )
            outcome = _Outcome(sent=False, response=f"unexpected error: {err!r}")
            return self._result(message, outcome, attempts=0, start=start), outcome
        attempt = 0
        while True:
            attempt += 1
            if self._bucket is not None:
                self._bucket.acquire()
            try:
                outcome = self._attempt(message, prepared)
            except Exception as err:
                # A bug, not the server: fail this message only, so that the results of the
                # messages already delivered still reach the outbox.
                logger.exception(
                    "%s: unexpected error sending %s", self.name, message.idempotency_key
                )
                self._after_unexpected_error()
                outcome = _Outcome(sent=False, response=f"unexpected error: {err!r}")
            if outcome.sent or not outcome.transient or attempt >= self.max_attempts:
                break
            delay = 0.0 if outcome.retry_now else self._backoff(attempt, outcome.retry_after)
            logger.info(
                "%s: attempt %d for %s failed (%s); retrying in %.2f s",
                self.name,
                attempt,
                message.idempotency_key,
                outcome.response,
                delay,
            )
            if delay > 0:
                self._sleep(delay)
        if not outcome.sent:
            logger.warning(
                "%s: %s failed after %d attempt(s) (%s): %s",
                self.name,
                message.idempotency_key,
                attempt,
                "transient" if outcome.transient else "permanent",
                outcome.response,
            )
        return self._result(message, outcome, attempts=attempt, start=start), outcome

    def _backoff(self, attempt: int, retry_after: float | None) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based)."""
        if retry_after is not None:
            return min(max(retry_after, 0.0), self.backoff_max)
        cap = min(self.backoff_max, self.backoff_base * 2.0 ** (attempt - 1))
        return self._rng.uniform(0.0, cap)

    def _result(
        self, message: Message, outcome: _Outcome, *, attempts: int, start: float
    ) -> SendResult:
        return SendResult(
            idempotency_key=message.idempotency_key,
            status="sent" if outcome.sent else "failed",
            attempts=attempts,
            response=outcome.response,
            transient=outcome.transient and not outcome.sent,
            elapsed_s=max(self._clock() - start, 0.0),
        )


# --------------------------------------------------------------------------------------- email


@dataclass(frozen=True)
class _Email:
    """A message ready for the SMTP transaction."""

    recipient: str
    content: bytes
    smtputf8: bool


# A bare address (no display name, no list): what RCPT TO and the To header both take.
_ADDR_SPEC = re.compile(r"[^@\s<>,;:\"()\[\]\\]+@[^@\s<>,;:\"()\[\]\\.][^@\s<>,;:\"()\[\]\\]*")


class _HeaderClasses(HeaderRegistry):
    """The email package's header registry, building each header's class once.

    The stock registry creates a new class (``type(...)``) for every header of every message:
    about half of what building an email costs. The classes carry no state, so one per header
    name gives the same headers and the same bytes.
    """

    def __init__(self) -> None:
        super().__init__()
        self._classes: dict[str, type[BaseHeader]] = {}

    def __getitem__(self, name: str) -> type[BaseHeader]:
        key = name.lower()
        found = self._classes.get(key)
        if found is None:
            found = self._classes[key] = super().__getitem__(name)
        return found


@functools.cache
def _email_policy(smtputf8: bool) -> email.policy.EmailPolicy[EmailMessage]:
    """``email.policy.SMTPUTF8`` or ``email.policy.SMTP``, with the header classes built once."""
    policy = email.policy.SMTPUTF8 if smtputf8 else email.policy.SMTP
    return policy.clone(header_factory=_HeaderClasses())


def _smtp_reply(code: int, text: bytes | str) -> str:
    if isinstance(text, bytes):
        text = text.decode("utf-8", errors="replace")
    return f"{code} {' '.join(text.split())}".strip()


def _smtp_code_is_transient(code: int) -> bool:
    # 4xx: try again later. 5xx: permanent. Anything else (-1 for a garbled reply, an
    # unexpected 2xx/3xx) means the session is out of step: transient, on a new connection.
    return not 500 <= code < 600


def _error_text(err: BaseException) -> str:
    text = " ".join(str(err).split())
    return f"{type(err).__name__}: {text}" if text else type(err).__name__


class EmailProvider(_RetryingProvider[_Email]):
    """Sends email over SMTP, over up to ``connections`` sessions in parallel per batch.

    Parameters
    ----------
    host, port : str, int
        The SMTP server.
    username, password : str or None
        SMTP AUTH credentials; no AUTH when ``username`` is ``None``.
    starttls : bool
        Upgrade the connection with STARTTLS before AUTH (the certificate is verified).
    sender : str
        The From header, e.g. ``Shop <news@shop.example>``; its address is the envelope sender.
    timeout : float
        Socket timeout in seconds for connecting and for every command.
    rate_per_second : float or None
        At most this many SMTP transactions (attempts, retries included) per second.
    max_attempts : int
        Tries per message, the first included.
    backoff_base, backoff_max : float
        Exponential backoff with full jitter between attempts (see the module docstring).
    batch_size : int
        At most this many messages per SMTP session; a longer batch opens a new session.
    connections : int
        SMTP sessions a batch is spread over, each in its own thread (>= 1). A batch is cut
        into that many contiguous parts (fewer for a short batch: at least 10 messages a
        part); the results keep the batch's order. ``smtplib`` waits for each reply before the
        next command (four round trips per message), so parallel sessions are what lifts the
        rate; mind the server's limit on connections per client.
    sleep, clock : callable
        Injectable for tests: ``sleep(seconds)`` and a monotonic clock.
    seed : int or None
        Seed of the jitter's ``random.Random``.
    ssl_context : ssl.SSLContext or None
        For STARTTLS; default ``ssl.create_default_context()`` (tests pass one trusting their CA).
    local_hostname : str or None
        Name given in EHLO; default the machine's FQDN, looked up once.

    Notes
    -----
    Each session is opened on the first message of its part of a batch and closed (QUIT) at
    the batch's end; the rate limit is shared by all of them. A
    connection the server drops is replaced on the next attempt, at once if it had already
    carried a message (the server's idle or per-session limit), else after the backoff.
    A recipient refused with 5xx fails that message only; 4xx (greylisting) is retried.
    """

    def __init__(
        self,
        host: str,
        port: int,
        *,
        username: str | None = None,
        password: str | None = None,
        starttls: bool = False,
        sender: str,
        timeout: float = 10.0,
        rate_per_second: float | None = None,
        max_attempts: int = 4,
        backoff_base: float = 0.5,
        backoff_max: float = 8.0,
        batch_size: int = 200,
        connections: int = 1,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        seed: int | None = None,
        ssl_context: ssl.SSLContext | None = None,
        local_hostname: str | None = None,
    ) -> None:
        super().__init__(
            name="email",
            rate_per_second=rate_per_second,
            max_attempts=max_attempts,
            backoff_base=backoff_base,
            backoff_max=backoff_max,
            sleep=sleep,
            clock=clock,
            seed=seed,
        )
        if not host:
            raise ValueError("host is empty")
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        if connections < 1:
            raise ValueError(f"connections must be at least 1, got {connections}")
        if timeout <= 0:
            raise ValueError(f"timeout must be positive, got {timeout}")
        if password is not None and username is None:
            raise ValueError("password given without username")
        envelope_sender = email.utils.parseaddr(sender)[1]
        if "@" not in envelope_sender or any(c in sender for c in "\r\n"):
            raise ValueError(f"sender {sender!r} is not an email address")
        self.host = host
        self.port = port
        self.username = username
        self._password = password
        self.starttls = starttls
        self.sender = sender
        self.timeout = float(timeout)
        self.batch_size = batch_size
        self._envelope_sender = envelope_sender
        self._ssl_context = ssl_context
        self._local_hostname = local_hostname
        self._smtp: smtplib.SMTP | None = None
        self._messages_on_connection = 0
        self.connections = connections
        # The sessions beyond this provider's own, built on the first batch that needs them.
        self._seed = seed
        self._lanes: list[EmailProvider] = []
        self._pool: ThreadPoolExecutor | None = None

    def __repr__(self) -> str:
        return (
            f"EmailProvider(host={self.host!r}, port={self.port}, username={self.username!r}, "
            f"starttls={self.starttls}, sender={self.sender!r}, connections={self.connections})"
        )

    def close(self) -> None:
        """Say QUIT and close the connections, if any is open."""
        self._disconnect(polite=True)
        lanes, self._lanes = self._lanes, []
        for lane in lanes:
            lane.close()
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True)

    def send_batch(self, messages: Sequence[Message]) -> list[SendResult]:
        """Send ``messages`` over up to ``connections`` parallel sessions; results in order.

        Parameters
        ----------
        messages : sequence of Message
            Messages for the email channel.

        Returns
        -------
        list of SendResult
            ``results[i]`` is the fate of ``messages[i]``.
        """
        parts = min(self.connections, len(messages) // _MIN_MESSAGES_PER_CONNECTION)
        if parts <= 1:
            return super().send_batch(messages)
        bounds = [round(i * len(messages) / parts) for i in range(parts + 1)]
        chunks = [messages[bounds[i] : bounds[i + 1]] for i in range(parts)]
        lanes = self._lanes_for(parts - 1)
        assert self._pool is not None
        # This provider sends the first part itself; the others go to their own sessions.
        futures = [
            self._pool.submit(lane.send_batch, chunk)
            for lane, chunk in zip(lanes, chunks[1:], strict=True)
        ]
        try:
            results = super().send_batch(chunks[0])
        finally:
            # Never return (or raise) while a session still has messages in flight.
            wait(futures)
        for future in futures:
            results.extend(future.result())
        return results

    def _lanes_for(self, count: int) -> list[EmailProvider]:
        """``count`` single-session providers like this one, sharing its rate limit."""
        if self._local_hostname is None:
            self._local_hostname = socket.getfqdn()
        while len(self._lanes) < count:
            number = len(self._lanes) + 1
            lane = EmailProvider(
                self.host,
                self.port,
                username=self.username,
                password=self._password,
                starttls=self.starttls,
                sender=self.sender,
                timeout=self.timeout,
                max_attempts=self.max_attempts,
                backoff_base=self.backoff_base,
                backoff_max=self.backoff_max,
                batch_size=self.batch_size,
                sleep=self._sleep,
                clock=self._clock,
                seed=None if self._seed is None else self._seed + number,
                ssl_context=self._ssl_context,
                local_hostname=self._local_hostname,
            )
            lane._bucket = self._bucket
            self._lanes.append(lane)
        if self._pool is None:
            self._pool = ThreadPoolExecutor(
                max_workers=self.connections - 1, thread_name_prefix="clv-smtp"
            )
        return self._lanes[:count]

    def _end_batch(self) -> None:
        self._disconnect(polite=True)

    def _after_unexpected_error(self) -> None:
        self._disconnect(polite=False)

    def _prepare(self, message: Message) -> _Email:
        if not _ADDR_SPEC.fullmatch(message.recipient):
            raise ValueError(f"recipient {message.recipient!r} is not an email address")
        smtputf8 = not (message.recipient.isascii() and self.sender.isascii())
        msg = EmailMessage(policy=_email_policy(smtputf8))
        try:
            msg["From"] = self.sender
            msg["To"] = message.recipient
            if message.subject is not None:
                # The email package refuses CR/LF in header values (header injection).
                msg["Subject"] = message.subject
            msg["Date"] = email.utils.formatdate(usegmt=True)
            msg["Message-ID"] = f"<{message.idempotency_key}@clv>"
            msg["X-CLV-Idempotency-Key"] = message.idempotency_key
            # Quoted-printable keeps a non-ASCII body 7-bit clean for servers without 8BITMIME.
            cte = None if message.body.isascii() else "quoted-printable"
            msg.set_content(message.body, cte=cte)
            content = msg.as_bytes()
        except (ValueError, LookupError, email.errors.MessageError) as err:
            # The header parser can also fail with IndexError on odd input.
            raise ValueError(f"cannot build the email: {_error_text(err)}") from err
        return _Email(recipient=message.recipient, content=content, smtputf8=smtputf8)

    def _attempt(self, message: Message, prepared: _Email) -> _Outcome:
        if self._smtp is not None and self._messages_on_connection >= self.batch_size:
            self._disconnect(polite=True)
        if self._smtp is None:
            try:
                self._smtp = self._connect()
            except Exception as err:
                return self._connect_failure(err)
        smtp = self._smtp
        reused = self._messages_on_connection > 0
        try:
            return self._transaction(smtp, prepared)
        except smtplib.SMTPServerDisconnected as err:
            self._disconnect(polite=False)
            return _Outcome(
                sent=False,
                response=f"server closed the connection: {_error_text(err)}",
                transient=True,
                retry_now=reused,
            )
        except smtplib.SMTPResponseException as err:  # DATA answered with something but 354
            return self._refused(smtp, "DATA", err.smtp_code, err.smtp_error)
        except OSError as err:  # timeouts, resets
            self._disconnect(polite=False)
            return _Outcome(sent=False, response=_error_text(err), transient=True)

    def _connect(self) -> smtplib.SMTP:
        if self._local_hostname is None:
            self._local_hostname = socket.getfqdn()
        # The host goes to the constructor: smtplib checks the STARTTLS certificate against it.
        smtp = smtplib.SMTP(
            self.host, self.port, local_hostname=self._local_hostname, timeout=self.timeout
        )
        try:
            smtp.ehlo_or_helo_if_needed()
            if self.starttls:
                context = self._ssl_context or ssl.create_default_context()
                code, reply = smtp.starttls(context=context)
                if code != 220:  # pragma: no cover - smtplib raises for anything but 220
                    raise smtplib.SMTPResponseException(code, reply)
                smtp.ehlo()
            if self.username is not None:
                smtp.login(self.username, self._password or "")
        except BaseException:
            smtp.close()
            raise
        self._messages_on_connection = 0
        return smtp

    def _connect_failure(self, err: Exception) -> _Outcome:
        where = f"{self.host}:{self.port}"
        if isinstance(err, smtplib.SMTPConnectError):
            # A greeting other than 220 (usually 421, too busy): try again later.
            response, transient = (
                f"greeting from {where}: {_smtp_reply(err.smtp_code, err.smtp_error)}",
                True,
            )
        elif isinstance(err, smtplib.SMTPNotSupportedError):
            # No STARTTLS, or no AUTH (offered only after STARTTLS): a configuration error.
            response, transient = f"{where} does not support it: {err}", False
        elif isinstance(err, smtplib.SMTPResponseException):  # EHLO, STARTTLS or AUTH refused
            reply = _smtp_reply(err.smtp_code, err.smtp_error)
            response, transient = f"session setup: {reply}", _smtp_code_is_transient(err.smtp_code)
        elif isinstance(err, smtplib.SMTPServerDisconnected):
            response, transient = f"{where} closed the connection: {_error_text(err)}", True
        elif isinstance(err, ssl.SSLCertVerificationError):
            response, transient = f"TLS certificate of {where}: {_error_text(err)}", False
        elif isinstance(err, OSError):  # refused, timed out, TLS handshake cut, DNS
            response, transient = f"cannot connect to {where}: {_error_text(err)}", True
        elif isinstance(err, smtplib.SMTPException):  # "No suitable authentication method"
            response, transient = f"session setup: {_error_text(err)}", False
        else:
            raise err
        return _Outcome(sent=False, response=response, transient=transient, stops_batch=True)

    def _transaction(self, smtp: smtplib.SMTP, prepared: _Email) -> _Outcome:
        options: list[str] = []
        if prepared.smtputf8:
            if not smtp.has_extn("smtputf8"):
                return _Outcome(
                    sent=False,
                    response="server does not offer SMTPUTF8, needed for a non-ASCII address",
                )
            options.append("SMTPUTF8")
            if smtp.has_extn("8bitmime"):
                options.append("BODY=8BITMIME")
        code, reply = smtp.mail(self._envelope_sender, options)
        if code != 250:
            return self._refused(smtp, "MAIL FROM", code, reply)
        code, reply = smtp.rcpt(prepared.recipient)
        if code not in (250, 251):
            return self._refused(smtp, "RCPT TO", code, reply)
        code, reply = smtp.data(prepared.content)
        self._messages_on_connection += 1
        if code != 250:
            return self._refused(smtp, "DATA", code, reply)
        return _Outcome(sent=True, response=_smtp_reply(code, reply))

    def _refused(self, smtp: smtplib.SMTP, stage: str, code: int, reply: bytes | str) -> _Outcome:
        """The server answered ``code`` at ``stage``: reset the transaction, classify the reply."""
        if code == 421 or not 400 <= code < 600:  # closing, or out of step
            self._disconnect(polite=False)
        else:
            try:
                smtp.rset()
            except (smtplib.SMTPException, OSError):
                self._disconnect(polite=False)
        return _Outcome(
            sent=False,
            response=f"{_smtp_reply(code, reply)} ({stage})",
            transient=_smtp_code_is_transient(code),
        )

    def _disconnect(self, *, polite: bool) -> None:
        smtp, self._smtp = self._smtp, None
        self._messages_on_connection = 0
        if smtp is None:
            return
        if polite:
            try:
                smtp.quit()
                return
            except (smtplib.SMTPException, OSError):
                pass
        smtp.close()


# ------------------------------------------------------------------------------------ webhooks


def _retry_after_seconds(value: str | None) -> float | None:
    """``Retry-After`` in seconds; ``None`` if absent or an HTTP date (then the backoff applies)."""
    if value is None:
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        return None
    return seconds if math.isfinite(seconds) and seconds >= 0 else None


class WebhookProvider(_RetryingProvider[bytes]):
    """Sends messages as JSON POSTs to an HTTP endpoint (SMS and in-app gateways).

    The body is ``{"idempotency_key", "recipient", "body", "metadata"}``, with the header
    ``Idempotency-Key: <key>``. 2xx: sent. 408, 429, 5xx, network errors and timeouts:
    transient, retried (``Retry-After`` in seconds is honoured, capped by ``backoff_max``).
    Any other status (other 4xx, and 3xx: redirects are not followed): permanent.

    Parameters
    ----------
    url : str
        The endpoint, ``http://`` or ``https://``.
    name : str
        The channel served, ``"sms"`` or ``"in_app"``.
    timeout : float
        Seconds for connecting, and for each read and write.
    headers : mapping or None
        Extra headers on every request (``Authorization``, say).
    rate_per_second, max_attempts, backoff_base, backoff_max, sleep, clock, seed
        As for :class:`EmailProvider`.
    client : httpx.Client or None
        Client to use (connection pool, proxies, TLS). It is not closed by :meth:`close`; a
        client made here is.
    """

    def __init__(
        self,
        url: str,
        *,
        name: str,
        timeout: float = 10.0,
        headers: Mapping[str, str] | None = None,
        rate_per_second: float | None = None,
        max_attempts: int = 4,
        backoff_base: float = 0.5,
        backoff_max: float = 8.0,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        seed: int | None = None,
        client: httpx.Client | None = None,
    ) -> None:
        super().__init__(
            name=name,
            rate_per_second=rate_per_second,
            max_attempts=max_attempts,
            backoff_base=backoff_base,
            backoff_max=backoff_max,
            sleep=sleep,
            clock=clock,
            seed=seed,
        )
        try:
            parsed = httpx.URL(url)
        except httpx.InvalidURL as err:
            raise ValueError(f"webhook URL {url!r} is not a URL: {err}") from err
        if parsed.scheme not in ("http", "https") or not parsed.host:
            raise ValueError(f"webhook URL {url!r} must be http:// or https:// with a host")
        if timeout <= 0:
            raise ValueError(f"timeout must be positive, got {timeout}")
        self.url = url
        self.timeout = float(timeout)
        self._headers = dict(headers or {})
        self._owns_client = client is None
        self._client = client if client is not None else httpx.Client()

    def __repr__(self) -> str:
        return f"WebhookProvider({self.url!r}, name={self.name!r})"

    def close(self) -> None:
        """Close the HTTP client if this provider made it."""
        if self._owns_client:
            self._client.close()

    def _prepare(self, message: Message) -> bytes:
        payload = {
            "idempotency_key": message.idempotency_key,
            "recipient": message.recipient,
            "body": message.body,
            "metadata": dict(message.metadata),
        }
        return json.dumps(payload, ensure_ascii=False).encode("utf-8")

    def _attempt(self, message: Message, prepared: bytes) -> _Outcome:
        headers = {
            **self._headers,
            "Content-Type": "application/json",
            "Idempotency-Key": message.idempotency_key,
        }
        try:
            response = self._client.post(
                self.url, content=prepared, headers=headers, timeout=self.timeout
            )
        except httpx.UnsupportedProtocol as err:
            return _Outcome(sent=False, response=_error_text(err), stops_batch=True)
        except (httpx.ConnectError, httpx.ConnectTimeout) as err:
            return _Outcome(
                sent=False,
                response=f"cannot connect to {self.url}: {_error_text(err)}",
                transient=True,
                stops_batch=True,
            )
        except httpx.TimeoutException as err:
            return _Outcome(
                sent=False,
                response=f"timed out after {self.timeout:g} s: {_error_text(err)}",
                transient=True,
            )
        except httpx.TransportError as err:  # reset, closed without a response, proxy
            return _Outcome(sent=False, response=_error_text(err), transient=True)
        status = response.status_code
        text = " ".join(response.text[:_MAX_RESPONSE_BODY].split())
        reply = f"{status} {response.reason_phrase}" + (f": {text}" if text else "")
        if 200 <= status < 300:
            return _Outcome(sent=True, response=reply)
        transient = status in (408, 429) or status >= 500
        return _Outcome(
            sent=False,
            response=reply,
            transient=transient,
            retry_after=_retry_after_seconds(response.headers.get("Retry-After"))
            if transient
            else None,
        )


# ------------------------------------------------------------------------------------ settings

_ENV_VARS = {
    "email": "CLV_SMTP_HOST",
    "sms": "CLV_SMS_WEBHOOK_URL",
    "in_app": "CLV_INAPP_WEBHOOK_URL",
}


def providers_from_settings(
    settings: Settings | None = None, *, channels: Iterable[str] | None = None
) -> dict[str, Provider]:
    """Build the channel providers the settings configure.

    Parameters
    ----------
    settings : Settings or None
        Default :func:`clv.settings.get_settings`.
    channels : iterable of str or None
        Channels that must be available (e.g. those a campaign uses). ``None``: every
        configured channel, and none is required.

    Returns
    -------
    dict of str to Provider
        Keyed by channel: ``"email"`` (``CLV_SMTP_*``), ``"sms"`` (``CLV_SMS_WEBHOOK_URL``),
        ``"in_app"`` (``CLV_INAPP_WEBHOOK_URL``). The caller closes them.

    Raises
    ------
    ChannelConfigError
        If a channel in ``channels`` is unknown or not configured (the message names the
        environment variable to set), or a setting is unusable.
    """
    if settings is None:
        from clv.settings import get_settings

        settings = get_settings()
    configured = {
        "email": settings.smtp_host,
        "sms": settings.sms_webhook_url,
        "in_app": settings.inapp_webhook_url,
    }
    if channels is None:
        wanted = [channel for channel in CHANNELS if configured[channel]]
    else:
        wanted = list(dict.fromkeys(channels))
        unknown = [channel for channel in wanted if channel not in configured]
        if unknown:
            raise ChannelConfigError(
                f"unknown channel(s) {', '.join(map(repr, unknown))}; known: {', '.join(CHANNELS)}"
            )
        missing = [channel for channel in wanted if not configured[channel]]
        if missing:
            raise ChannelConfigError(
                "; ".join(
                    f"the {channel} channel is not configured: set {_ENV_VARS[channel]}"
                    for channel in missing
                )
            )
    providers: dict[str, Provider] = {}
    try:
        for channel in wanted:
            providers[channel] = _build_provider(settings, channel)
    except BaseException:
        for provider in providers.values():
            provider.close()
        raise
    return providers


def _build_provider(settings: Settings, channel: str) -> Provider:
    if channel == "email":
        assert settings.smtp_host is not None
        password = settings.smtp_password
        if password is not None and settings.smtp_user is None:
            raise ChannelConfigError("CLV_SMTP_PASSWORD is set but CLV_SMTP_USER is not")
        try:
            return EmailProvider(
                settings.smtp_host,
                settings.smtp_port,
                username=settings.smtp_user,
                password=None if password is None else password.get_secret_value(),
                starttls=settings.smtp_starttls,
                sender=settings.smtp_from,
                connections=settings.smtp_connections,
            )
        except ValueError as err:
            raise ChannelConfigError(f"email channel (CLV_SMTP_*): {err}") from err
    url = settings.sms_webhook_url if channel == "sms" else settings.inapp_webhook_url
    assert url is not None
    try:
        return WebhookProvider(url, name=channel)
    except ValueError as err:
        raise ChannelConfigError(f"{_ENV_VARS[channel]}: {err}") from err
