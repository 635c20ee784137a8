"""Reading the insight counters: every counter item of some buckets, one Query per bucket.

Counter items are partitioned by bucket (:mod:`chalicelib.insights.counters`), so the items or
categories of a bucket are one Query (more pages past 1 MB), whatever the catalog's size; the
buckets of a window are queried side by side.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor

from pynamodb.attributes import UnicodeAttribute
from pynamodb.connection import TableConnection
from pynamodb.exceptions import PynamoDBException
from pynamodb.expressions.operand import Path

from chalicelib.errors import InsightsUnavailable
from chalicelib.insights.counters import RANGE_KEY, Counts

logger = logging.getLogger(__name__)

#: Buckets queried side by side.
QUERY_THREADS = 8
_DIMENSION = UnicodeAttribute(attr_name=RANGE_KEY)


class CounterReader:
    """The counter items of buckets, by bucket.

    Parameters
    ----------
    table: the counters table's connection (the request's timeouts).
    """

    def __init__(self, table: TableConnection) -> None:
        self._table = table

    def read(self, buckets: list[str], prefix: str) -> dict[str, list[Counts]]:
        """Every counter item of each of *buckets* whose dimension starts with *prefix* (``item#``, ``category#``).

        Raises
        ------
        InsightsUnavailable
            When DynamoDB did not answer in time.
        """
        if not buckets:
            return {}
        with ThreadPoolExecutor(max_workers=min(QUERY_THREADS, len(buckets))) as pool:
            pages = list(pool.map(lambda bucket: self._bucket(bucket, prefix), buckets))
        return dict(zip(buckets, pages, strict=True))

    def _bucket(self, bucket: str, prefix: str) -> list[Counts]:
        found: list[Counts] = []
        start = None
        try:
            while True:
                page = self._table.query(bucket, range_key_condition=Path(_DIMENSION).startswith(prefix),
                                         exclusive_start_key=start)
                found += [Counts.from_raw(item) for item in page.get("Items", [])]
                start = page.get("LastEvaluatedKey")
                if not start:
                    return found
        except PynamoDBException as exc:
            logger.warning("cannot read the insight counters of a bucket: %s", exc)
            raise InsightsUnavailable("the insight counters did not answer in time; retry") from exc
