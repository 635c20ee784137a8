"""Batch calls on one DynamoDB table that never lose an item silently.

``BatchWriteItem`` and ``BatchGetItem`` may leave part of a request
unprocessed, or be throttled whole; both are retried here with exponential
backoff and full jitter (tenacity) until done or out of attempts, and what is
still not done is reported to the caller by key.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Callable, Mapping

from pynamodb.connection import TableConnection
from pynamodb.exceptions import PynamoDBException
from tenacity import RetryError, Retrying, retry_if_exception_type, stop_after_attempt, wait_random_exponential

from chalicelib.errors import EventLogUnavailable
from chalicelib.eventlog.item import HASH_KEY, RANGE_KEY, ItemKey, raw_key, raw_key_of

logger = logging.getLogger(__name__)

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


class BatchWriter:
    """Retrying batch puts, deletes and existence checks on one table.

    Parameters
    ----------
    table: the table's pynamodb connection (tests pass a wrapper that injects failures).
    attempts, retry_base_seconds: retry budget of one batch call, with
        exponential backoff and full jitter.
    sleep: the pause between attempts (tests pass a no-op).
    """

    def __init__(
        self,
        table: TableConnection,
        *,
        attempts: int = 8,
        retry_base_seconds: float = 0.05,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._table = table
        self._attempts = attempts
        self._retry_base = retry_base_seconds
        self._sleep = sleep

    @property
    def table_name(self) -> str:
        return self._table.table_name

    def put(self, items: Mapping[ItemKey, dict[str, Any]]) -> set[ItemKey]:
        """One BatchWriteItem of up to 25 serialised items, by key; returns the keys not written."""
        return self._write(items, "put_items", "PutRequest", "Item")

    def delete(self, keys: list[ItemKey]) -> set[ItemKey]:
        """One BatchWriteItem of up to 25 deletes; returns the keys not deleted."""
        return self._write({key: raw_key_of(*key) for key in keys}, "delete_items", "DeleteRequest", "Key")

    def _write(self, requests: Mapping[ItemKey, dict[str, Any]], argument: str, request_name: str,
               payload_name: str) -> set[ItemKey]:
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
            self._retry(attempt)
        except (RetryError, PynamoDBException) as exc:
            logger.error("%d %s not written after retries: %s", len(pending), argument, exc)
        return set(pending)

    def find_existing(self, keys: list[ItemKey]) -> set[ItemKey]:
        """Which of *keys* are stored (strongly consistent BatchGetItem, 100 keys a call, retried).

        Raises
        ------
        EventLogUnavailable
            When some keys could not be checked after every retry.
        """
        found: set[ItemKey] = set()
        for start in range(0, len(keys), READ_BATCH):
            pending = [raw_key_of(*key) for key in keys[start:start + READ_BATCH]]

            def attempt() -> None:
                nonlocal pending
                # Strongly consistent: a resend right after a write must see it.
                response = self._call(lambda: self._table.batch_get_item(
                    pending, consistent_read=True, attributes_to_get=[HASH_KEY, RANGE_KEY]
                ))
                if response is not None:
                    found.update(raw_key(item) for item in response.get("Responses", {}).get(self.table_name, []))
                    pending = response.get("UnprocessedKeys", {}).get(self.table_name, {}).get("Keys", [])
                if pending:
                    raise _Unfinished(f"{len(pending)} keys unprocessed")

            try:
                self._retry(attempt)
            except (RetryError, PynamoDBException) as exc:
                raise EventLogUnavailable(f"cannot check for duplicate events: {exc}") from exc
        return found

    def _retry(self, attempt: Callable[[], None]) -> None:
        """Run *attempt* until it stops raising _Unfinished, with exponential backoff and full jitter.

        Raises RetryError when the attempts run out; other errors pass through at once.
        """
        for retry_state in Retrying(
            stop=stop_after_attempt(self._attempts),
            wait=wait_random_exponential(multiplier=self._retry_base, max=max(self._retry_base * 64, 1.0)),
            retry=retry_if_exception_type(_Unfinished),
            sleep=self._sleep,
            reraise=False,
        ):
            with retry_state:
                attempt()

    @staticmethod
    def _call(operation: Callable[[], dict]) -> dict | None:
        """Run one batch call; None when DynamoDB throttled it (retry the whole call)."""
        try:
            return operation()
        except PynamoDBException as exc:
            if exc.cause_response_code in _TRANSIENT_CODES or exc.cause_response_code is None:
                logger.warning("DynamoDB batch call failed, will retry: %s", exc)
                return None
            raise
