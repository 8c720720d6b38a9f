"""What a Kafka error means for the caller, and the errors this package raises for them.

librdkafka reports errors of every client through `KafkaError`; what to do depends on its kind:
- RETRIABLE: the cluster is moving (a leader changed, a broker restarts, a topic was just
  created, a coordinator moved, a request timed out): wait a little and call again;
- ABORTABLE: the open transaction cannot commit: abort it and redo its work;
- AUTH: credentials or TLS refused: no retry can help, stop with a message saying so;
- FATAL: this client cannot go on (a producer fenced by a newer instance): stop;
- OTHER: the request itself is wrong (a bad setting, a policy refusing it): report it.

Retries back off exponentially and log one line per kind of error at most every few seconds
(`Throttle`), so a broker restart shows as a few lines, not thousands.
"""

from __future__ import annotations

import enum
import logging
import random
import threading
import time
from collections.abc import Callable
from typing import NoReturn, TypeVar

from confluent_kafka import KafkaError, KafkaException

from infinitic_streams.errors import InfiniticError

logger = logging.getLogger("infinitic_streams.kafka")
T = TypeVar("T")


class KafkaUnavailable(InfiniticError):
    """Kafka did not answer, or kept answering "not now", for longer than the caller waits."""


class KafkaAuthError(InfiniticError):
    """Kafka refused the client's credentials or its TLS handshake: fix the [kafka] settings."""


class FatalKafkaError(InfiniticError):
    """A client cannot go on (e.g. a producer fenced by a newer instance): the process stops."""


class ProducerFenced(FatalKafkaError):
    """The transactional producer was fenced: by a newer instance with its transactional.id,
    or by its coordinator after aborting a transaction it had let run past its timeout
    (seen during broker restarts). Only a new producer can go on."""


class TransactionAborted(InfiniticError):
    """The transaction failed in a way that requires aborting it and redoing its work."""


class KafkaRequestError(InfiniticError):
    """Kafka refused a request for a reason no retry changes (a setting, a policy, a limit)."""


class Kind(enum.Enum):
    RETRIABLE = "retriable"
    ABORTABLE = "abortable"
    AUTH = "auth"
    FATAL = "fatal"
    OTHER = "other"


_RETRIABLE = {
    KafkaError._TRANSPORT,
    KafkaError._ALL_BROKERS_DOWN,
    KafkaError._TIMED_OUT,
    KafkaError._TIMED_OUT_QUEUE,
    KafkaError._MSG_TIMED_OUT,
    KafkaError._WAIT_COORD,
    KafkaError._WAIT_CACHE,
    KafkaError._NOENT,  # "Failed to query partition leaders: No leaders found"
    KafkaError._UNKNOWN_PARTITION,
    KafkaError._UNKNOWN_TOPIC,
    KafkaError._UNKNOWN_BROKER,
    KafkaError._RESOLVE,
    KafkaError._RETRY,
    KafkaError._IN_PROGRESS,
    KafkaError._PREV_IN_PROGRESS,
    KafkaError.LEADER_NOT_AVAILABLE,
    KafkaError.NOT_LEADER_FOR_PARTITION,
    KafkaError.UNKNOWN_TOPIC_OR_PART,
    KafkaError.UNKNOWN_TOPIC_ID,
    KafkaError.REQUEST_TIMED_OUT,
    KafkaError.NETWORK_EXCEPTION,
    KafkaError.NOT_COORDINATOR,
    KafkaError.COORDINATOR_NOT_AVAILABLE,
    KafkaError.COORDINATOR_LOAD_IN_PROGRESS,
    KafkaError.NOT_ENOUGH_REPLICAS,
    KafkaError.NOT_ENOUGH_REPLICAS_AFTER_APPEND,
    KafkaError.REPLICA_NOT_AVAILABLE,
    KafkaError.REBALANCE_IN_PROGRESS,
    KafkaError.UNSTABLE_OFFSET_COMMIT,
    KafkaError.CONCURRENT_TRANSACTIONS,
    KafkaError.FENCED_LEADER_EPOCH,
    KafkaError.UNKNOWN_LEADER_EPOCH,
    KafkaError.ELIGIBLE_LEADERS_NOT_AVAILABLE,
    KafkaError.PREFERRED_LEADER_NOT_AVAILABLE,
    KafkaError.THROTTLING_QUOTA_EXCEEDED,
    KafkaError.UNKNOWN_CONTROLLER_ID,
}
_AUTH = {
    KafkaError._AUTHENTICATION,
    KafkaError._SSL,
    KafkaError.SASL_AUTHENTICATION_FAILED,
    KafkaError.ILLEGAL_SASL_STATE,
    KafkaError.UNSUPPORTED_SASL_MECHANISM,
    KafkaError.TOPIC_AUTHORIZATION_FAILED,
    KafkaError.GROUP_AUTHORIZATION_FAILED,
    KafkaError.CLUSTER_AUTHORIZATION_FAILED,
    KafkaError.TRANSACTIONAL_ID_AUTHORIZATION_FAILED,
}
_FENCED = {
    KafkaError._FENCED,
    KafkaError.PRODUCER_FENCED,
    KafkaError.INVALID_PRODUCER_EPOCH,
    KafkaError.TRANSACTION_COORDINATOR_FENCED,
}
_FATAL = {KafkaError._FATAL, *_FENCED}


def classify(error: KafkaError) -> Kind:
    code = error.code()
    if error.fatal() or code in _FATAL:
        return Kind.FATAL
    if code in _AUTH:
        return Kind.AUTH
    if error.txn_requires_abort():
        return Kind.ABORTABLE
    if error.retriable() or code in _RETRIABLE:
        return Kind.RETRIABLE
    return Kind.OTHER


def error_of(exception: KafkaException) -> KafkaError:
    """The KafkaError inside a KafkaException (librdkafka always puts one there)."""
    error = exception.args[0] if exception.args else None
    if isinstance(error, KafkaError):
        return error
    return KafkaError(KafkaError._FAIL, str(exception))


def auth_error(where: str, error: KafkaError) -> KafkaAuthError:
    return KafkaAuthError(
        f"Kafka at {where} refused this client: {error.str()}. Check the security settings "
        'under [kafka] ("security.protocol", "sasl.mechanism", "sasl.username", '
        '"sasl.password", "ssl.ca.location", ...): a retry cannot fix them.'
    )


def raise_for(error: KafkaError, what: str, where: str) -> NoReturn:
    """Raise the exception of this package that matches a non-retriable `error`."""
    kind = classify(error)
    if kind is Kind.AUTH:
        raise auth_error(where, error)
    if kind is Kind.FATAL:
        if error.code() in _FENCED:
            raise ProducerFenced(f"{what}: {error.str()}")
        raise FatalKafkaError(f"{what}: {error.str()}")
    if kind is Kind.ABORTABLE:
        raise TransactionAborted(f"{what}: {error.str()}")
    raise KafkaRequestError(f"{what} failed at {where}: {error.str()}")


class Throttle:
    """Logs a line per key at most every `interval` seconds, saying how many were held back."""

    def __init__(self, interval: float = 10.0, log: logging.Logger = logger) -> None:
        self._interval = interval
        self._log = log
        self._last: dict[str, tuple[float, int]] = {}
        self._lock = threading.Lock()

    def warning(self, key: str, text: str) -> None:
        self.log(logging.WARNING, key, "%s", text)

    def log(self, level: int, key: str, text: str, *args: object) -> None:
        now = time.monotonic()
        with self._lock:
            last, held = self._last.get(key, (-self._interval, 0))
            if now - last < self._interval:
                self._last[key] = (last, held + 1)
                return
            self._last[key] = (now, 0)
        more = f" ({held} more like it since the last line)" if held else ""
        self._log.log(level, text + "%s", *args, more)


class LibrdkafkaLog:
    """Where librdkafka's own log lines go (the `logger` of every client): at most one line
    per facility (FAIL, REQTMOUT, ...) every 10 s, so a broker restart shows as a few lines
    rather than one per connection attempt per thread. Its errors are logged as warnings:
    what librdkafka cannot get past reaches the caller as an error of its own."""

    def __init__(self) -> None:
        self._throttle = Throttle(10.0, logging.getLogger("infinitic_streams.kafka.librdkafka"))

    def log(self, level: int, text: str, *args: object) -> None:
        facility = str(args[0]) if args else ""
        self._throttle.log(min(level, logging.WARNING), facility, text, *args)


LIBRDKAFKA_LOG = LibrdkafkaLog()


class ClientErrors:
    """The `error_cb` of a client: retriable errors are logged (throttled); an authentication
    or fatal one is kept, so that the client's next operation raises it (`check`)."""

    def __init__(self, where: str, throttle: Throttle | None = None) -> None:
        self.where = where
        self.throttle = throttle or Throttle()
        self.broken: KafkaError | None = None

    def __call__(self, error: KafkaError) -> None:
        kind = classify(error)
        if kind in (Kind.AUTH, Kind.FATAL):
            self.broken = error
            logger.error("Kafka at %s: %s", self.where, error.str())
        else:
            self.throttle.warning(error.name(), f"Kafka at {self.where}: {error.str()} (retrying)")

    def check(self, what: str) -> None:
        if self.broken is not None:
            raise_for(self.broken, what, self.where)


class Backoff:
    """Exponential delays with jitter: 50 ms doubling up to `cap` seconds."""

    def __init__(self, first: float = 0.05, cap: float = 2.0) -> None:
        self._first, self._cap = first, cap
        self._next = first

    def next_delay(self) -> float:
        delay = self._next * (0.5 + random.random() / 2)
        self._next = min(self._next * 2, self._cap)
        return delay

    def sleep(self, until: float | None = None) -> None:
        delay = self.next_delay()
        if until is not None:
            delay = max(0.0, min(delay, until - time.monotonic()))
        time.sleep(delay)

    def reset(self) -> None:
        self._next = self._first


def retrying(
    operation: Callable[[float], T],
    what: str,
    errors: ClientErrors,
    timeout: float,
    attempt_timeout: float = 2.0,
    stop: Callable[[], bool] | None = None,
    poll: Callable[[], object] | None = None,
) -> T:
    """Call `operation(attempt_timeout)` until it succeeds, retrying retriable errors for up to
    `timeout` seconds (or until `stop()` says so); raise `KafkaUnavailable` after that.

    Attempts are short so that an authentication error, which librdkafka only reports through
    the client's error callback, ends the wait within seconds (`errors.check`, after `poll`
    served the callbacks)."""
    deadline = time.monotonic() + timeout
    backoff = Backoff()
    while True:
        remaining = deadline - time.monotonic()
        try:
            result = operation(max(0.1, min(attempt_timeout, remaining)))
        except KafkaException as exception:
            error = error_of(exception)
            if poll is not None:
                poll()
            errors.check(what)
            if classify(error) is not Kind.RETRIABLE:
                raise_for(error, what, errors.where)
            if time.monotonic() >= deadline or (stop is not None and stop()):
                raise KafkaUnavailable(
                    f"{what}: Kafka at {errors.where} still fails after {timeout:g} s "
                    f"({error.str()}). Check that the brokers run and that this host reaches "
                    '"bootstrap.servers".'
                ) from None
            errors.throttle.warning(f"{what}:{error.name()}", f"{what}: {error.str()} (retrying)")
            backoff.sleep(deadline)
            continue
        return result
