"""Batch calls on one DynamoDB table that never lose an item silently.

``BatchWriteItem`` and ``BatchGetItem`` may leave part of a request
unprocessed, be throttled whole, or time out / lose their connection; all are
retried here with exponential backoff and full jitter (tenacity) until done,
out of attempts, or out of the request's time (:class:`Deadline`), and what is
still not done is reported to the caller by key.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Callable, Mapping, TypeVar

from pynamodb.connection import TableConnection
from pynamodb.exceptions import PynamoDBException
from tenacity import (
    RetryCallState,
    RetryError,
    Retrying,
    retry_if_exception_type,
    stop_after_attempt,
    wait_random_exponential,
)

from chalicelib.deadlines import Deadline
from chalicelib.errors import EventLogUnavailable
from chalicelib.eventlog.item import HASH_KEY, RANGE_KEY, ItemKey, raw_key, raw_key_of

logger = logging.getLogger(__name__)
T = TypeVar("T")

#: DynamoDB limits per BatchWriteItem / BatchGetItem request.
WRITE_BATCH = 25
READ_BATCH = 100
#: Errors worth retrying the whole call for: DynamoDB asked us to slow down or failed on its side.
_TRANSIENT_CODES = {
    "ProvisionedThroughputExceededException",
    "ThrottlingException",
    "RequestLimitExceeded",
    "InternalServerError",
    "ServiceUnavailable",
}


class _Unfinished(Exception):
    """Some requests of a batch call are still pending (retry them)."""


class _OutOfTime(Exception):
    """Not even one call fits in what is left of the request's time."""


class BatchWriter:
    """Retrying batch puts, deletes and existence checks on one table.

    Parameters
    ----------
    table: the table's pynamodb connection (tests pass a wrapper that injects failures).
    attempts, retry_base_seconds: retry budget of one batch call, with
        exponential backoff and full jitter.
    call_seconds: the longest one call can take (its connect plus read
        timeouts): no attempt starts unless that much time is left.
    sleep: the pause between attempts (tests pass a no-op).
    """

    def __init__(
        self,
        table: TableConnection,
        *,
        attempts: int = 8,
        retry_base_seconds: float = 0.05,
        call_seconds: float = 0.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._table = table
        self._attempts = attempts
        self._retry_base = retry_base_seconds
        self._max_wait = max(retry_base_seconds * 64, 1.0)
        self._call_seconds = call_seconds
        self._sleep = sleep

    @property
    def table_name(self) -> str:
        return self._table.table_name

    def put(self, items: Mapping[ItemKey, dict[str, Any]], deadline: Deadline | None = None) -> set[ItemKey]:
        """One BatchWriteItem of up to 25 serialised items, by key; returns the keys not written."""
        return self._write(items, "put_items", "PutRequest", "Item", deadline)

    def delete(self, keys: list[ItemKey], deadline: Deadline | None = None) -> set[ItemKey]:
        """One BatchWriteItem of up to 25 deletes; returns the keys not deleted."""
        return self._write({key: raw_key_of(*key) for key in keys}, "delete_items", "DeleteRequest", "Key",
                           deadline)

    def _write(self, requests: Mapping[ItemKey, dict[str, Any]], argument: str, request_name: str,
               payload_name: str, deadline: Deadline | None) -> set[ItemKey]:
        pending = dict(requests)

        def attempt() -> None:
            response = self._call(lambda: self._table.batch_write_item(**{argument: list(pending.values())}))
            if response is not None:
                unprocessed = response.get("UnprocessedItems", {}).get(self.table_name, [])
                left = {raw_key(request[request_name][payload_name]) for request in unprocessed}
                for key in list(pending):
                    if key not in left:
                        del pending[key]
            if pending:
                raise _Unfinished(f"{len(pending)} requests unprocessed")

        try:
            self._retry(attempt, deadline)
        except (RetryError, _OutOfTime, PynamoDBException) as exc:
            logger.error("%d %s not written after retries: %s", len(pending), argument, exc)
        return set(pending)

    def find_existing(self, keys: list[ItemKey], deadline: Deadline | None = None) -> set[ItemKey]:
        """Which of *keys* are stored (strongly consistent BatchGetItem, 100 keys a call, retried).

        Raises
        ------
        EventLogUnavailable
            When some keys could not be checked after every retry.
        """
        return set(self.read(keys, [HASH_KEY, RANGE_KEY], deadline))

    def read(self, keys: list[ItemKey], attributes: list[str],
             deadline: Deadline | None = None) -> dict[ItemKey, dict[str, Any]]:
        """The stored items among *keys* (DynamoDB JSON, *attributes* only), read strongly consistent.

        Strongly consistent: a resend right after a write, or the erasure
        check right after a write, must see it.

        Raises
        ------
        EventLogUnavailable
            When some keys could not be read after every retry.
        """
        found: dict[ItemKey, dict[str, Any]] = {}
        wanted = sorted({HASH_KEY, RANGE_KEY, *attributes})
        for start in range(0, len(keys), READ_BATCH):
            pending = [raw_key_of(*key) for key in keys[start:start + READ_BATCH]]

            def attempt() -> None:
                nonlocal pending
                response = self._call(lambda: self._table.batch_get_item(
                    pending, consistent_read=True, attributes_to_get=wanted
                ))
                if response is not None:
                    for item in response.get("Responses", {}).get(self.table_name, []):
                        found[raw_key(item)] = item
                    pending = response.get("UnprocessedKeys", {}).get(self.table_name, {}).get("Keys", [])
                if pending:
                    raise _Unfinished(f"{len(pending)} keys unprocessed")

            try:
                self._retry(attempt, deadline)
            except (RetryError, _OutOfTime, PynamoDBException) as exc:
                logger.error("cannot read %d items: %s", len(pending), exc)
                raise EventLogUnavailable("the event log did not answer in time") from exc
        return found

    def run(self, operation: Callable[[], T], deadline: Deadline | None = None) -> T:
        """*operation* (one DynamoDB call through pynamodb), retried like the batch calls.

        Raises
        ------
        EventLogUnavailable
            When it failed on every attempt, or time ran out.
        """
        outcome: list[T] = []

        def attempt() -> None:
            response = self._call(lambda: {"value": operation()})
            if response is None:
                raise _Unfinished("the call failed")
            outcome.append(response["value"])

        try:
            self._retry(attempt, deadline)
        except (RetryError, _OutOfTime, PynamoDBException) as exc:
            logger.error("DynamoDB call failed after retries: %s", exc)
            raise EventLogUnavailable("the event log did not answer in time") from exc
        return outcome[0]

    def _retry(self, attempt: Callable[[], None], deadline: Deadline | None) -> None:
        """Run *attempt* until it stops raising _Unfinished, with exponential backoff and full jitter.

        Raises RetryError when the attempts or the time run out (_OutOfTime when no attempt fits at
        all); other errors pass through at once.
        """
        def out_of_time(state: RetryCallState) -> bool:
            # The next attempt waits up to the current backoff, then lasts up to one call.
            backoff = min(self._max_wait, self._retry_base * 2 ** state.attempt_number)
            return deadline is not None and not deadline.allows(backoff + self._call_seconds)

        if deadline is not None and not deadline.allows(self._call_seconds):
            raise _OutOfTime(f"{deadline.remaining():.2f} s left, a call may take {self._call_seconds:.2f} s")
        for retry_state in Retrying(
            stop=stop_after_attempt(self._attempts) | out_of_time,
            wait=wait_random_exponential(multiplier=self._retry_base, max=self._max_wait),
            retry=retry_if_exception_type(_Unfinished),
            sleep=self._sleep,
            reraise=False,
        ):
            with retry_state:
                attempt()

    @staticmethod
    def _call(operation: Callable[[], dict]) -> dict | None:
        """Run one batch call; None when it may succeed if sent again (retry the whole call).

        Throttling and DynamoDB's own failures are retried, and so are calls
        that got no answer at all (timeouts, dropped connections): a batch
        write is idempotent, so sending it again is safe.
        """
        try:
            return operation()
        except PynamoDBException as exc:
            code = error_code(exc)
            if code is None or code in _TRANSIENT_CODES:
                logger.warning("DynamoDB batch call failed, will retry: %s", exc)
                return None
            raise


def error_code(exc: PynamoDBException) -> str | None:
    """DynamoDB's error code of *exc*, or None when no answer came back (timeout, lost connection).

    pynamodb's ``cause_response_code`` fails on botocore errors that carry
    ``response = None`` (``ReadTimeoutError``, ``ConnectionClosedError``).
    """
    response = getattr(exc.cause, "response", None)
    if not isinstance(response, dict):
        return None
    return response.get("Error", {}).get("Code")
