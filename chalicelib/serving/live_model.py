"""Keeps the live model in memory across warm invocations and follows the pointer."""

from __future__ import annotations

import logging
import threading
import time
from datetime import datetime, timezone
from typing import Any, Callable, Protocol

from botocore.exceptions import BotoCoreError, ClientError

from chalicelib.errors import ModelUnavailable, RecommenderError
from chalicelib.models.store import ModelStore
from chalicelib.serving.recommender import Recommender

logger = logging.getLogger(__name__)

class ReloadObserver(Protocol):
    """Told of every reload of the live model (metrics)."""

    def loaded(self, version: str) -> None: ...

    def failed(self, message: str) -> None: ...


class _Unobserved:
    def loaded(self, version: str) -> None:
        pass

    def failed(self, message: str) -> None:
        pass


class LiveModel:
    """The model serving answers now, refreshed from the store's pointer.

    The pointer is re-read at most every *refresh_seconds*. While a model is
    served, that refresh runs in a background thread: no request waits on S3
    for it. A new version is loaded beside the old one and swapped in with one
    assignment, so a request that already holds the old :class:`Recommender`
    finishes with it. A version that fails to load is logged and remembered
    (not retried until the pointer moves again) while the old one keeps
    serving. An instance with no model yet loads in the request; if the
    pointer names a broken version it serves the newest older version that
    loads instead, and says so in :meth:`health`.

    Parameters
    ----------
    store: where versions and the pointer live.
    refresh_seconds: minimum interval between two reads of the pointer.
    clock: monotonic clock, replaceable in tests.
    observer: told of each new version loaded and each failure to load one.
    approximate_min_items: from how many items on a model with an approximate
        index answers through it (None: always exact).
    """

    #: Older versions a cold instance tries when the pointer's version is broken.
    FALLBACK_VERSIONS = 3
    #: A cold instance whose last load failed answers 503 at once for this long, rather than
    #: make every request wait on a store that does not answer.
    COLD_RETRY_SECONDS = 1.0

    def __init__(self, store: ModelStore, refresh_seconds: float, clock: Callable[[], float] = time.monotonic,
                 observer: ReloadObserver | None = None, approximate_min_items: int | None = None) -> None:
        self._store = store
        self._approximate_min_items = approximate_min_items
        self._observer = observer or _Unobserved()
        self._refresh_seconds = refresh_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._refresher: threading.Thread | None = None
        self._recommender: Recommender | None = None
        self._loaded_at: str | None = None
        self._checked_at: float | None = None
        self._failed_version: str | None = None
        self._last_error: str | None = None

    def recommender(self) -> Recommender:
        """The current recommender; loads one first on a cold instance, and starts a background
        refresh when one is due.

        Raises
        ------
        ModelUnavailable
            When no model has ever been loaded and none can be now.
        """
        current = self._recommender
        due = self._checked_at is None or self._clock() - self._checked_at >= self._refresh_seconds
        if current is None:
            with self._lock:  # one thread loads; the others wait for its model
                failed_lately = (self._checked_at is not None and self._clock() - self._checked_at
                                 < min(self._refresh_seconds, self.COLD_RETRY_SECONDS))
                if self._recommender is None and not failed_lately:
                    self._refresh()
            current = self._recommender
        elif due and self._lock.acquire(blocking=False):
            self._checked_at = self._clock()
            self._refresher = threading.Thread(target=self._refresh_then_release, name="model-refresh",
                                               daemon=True)
            self._refresher.start()
        if current is None:
            raise ModelUnavailable(f"no model can be served: {self._last_error or 'nothing published yet'}")
        return current

    def wait_for_refresh(self, timeout: float | None = None) -> None:
        """Wait until a background refresh under way ends (tests, scripts that publish then read)."""
        refresher = self._refresher
        if refresher is not None:
            refresher.join(timeout)

    def _refresh_then_release(self) -> None:
        try:
            self._refresh()
        finally:
            self._lock.release()

    def _refresh(self) -> None:
        self._checked_at = self._clock()
        try:
            version = self._store.live_version()
        except RecommenderError as exc:
            self._record_failure(None, "the model pointer is not valid", exc)
            return
        except (BotoCoreError, ClientError) as exc:
            self._record_failure(None, f"the model store did not answer ({type(exc).__name__})", exc)
            return
        if version is None:
            self._last_error = "no model version has been published"
            return
        if self._recommender is not None and version == self._recommender.version:
            self._last_error = None
            self._failed_version = None
            return
        if version == self._failed_version:
            return
        recommender = self._load(version)
        if recommender is None:
            if self._recommender is None:
                self._fall_back(version)
            return
        self._serve(recommender, version)

    def _load(self, version: str) -> Recommender | None:
        """*version* ready to serve, or None (the failure recorded)."""
        try:
            return Recommender(self._store.load(version), self._approximate_min_items)
        except RecommenderError as exc:
            self._record_failure(version, f"model version {version} was refused as broken", exc)
        except (BotoCoreError, ClientError) as exc:
            self._record_failure(None, f"model version {version} could not be read ({type(exc).__name__})", exc)
        except Exception as exc:  # noqa: BLE001 - whatever breaks a new version must not break serving
            logger.exception("unexpected failure loading model version %s", version)
            self._record_failure(version, f"model version {version} failed to load", exc)
        return None

    def _fall_back(self, broken: str) -> None:
        """Serve the newest version older than *broken* that loads, if any (a cold instance only)."""
        reason = self._last_error
        try:
            older = [version for version in self._store.version_ids() if version < broken]
        except (RecommenderError, BotoCoreError, ClientError) as exc:
            logger.error("cannot list model versions to fall back from %s: %s", broken, exc)
            return
        for version in older[:self.FALLBACK_VERSIONS]:
            recommender = self._load(version)
            if recommender is not None:
                self._serve(recommender, version)
                self._failed_version = broken
                self._last_error = f"{reason}; serving the older version {version} instead"
                logger.error("the pointer names %s, which cannot be served; fell back to %s", broken, version)
                return
        self._last_error = reason

    def _serve(self, recommender: Recommender, version: str) -> None:
        previous = self._recommender.version if self._recommender else None
        self._recommender = recommender
        self._loaded_at = datetime.now(timezone.utc).isoformat(timespec="seconds")
        self._failed_version = None
        self._last_error = None
        self._observer.loaded(version)
        logger.info("serving model version %s (was %s)", version, previous)

    def _record_failure(self, version: str | None, message: str, cause: Exception) -> None:
        # Remember a refused version so a broken upload is not downloaded on
        # every refresh; transient failures (version None) are retried.
        # *message* is what answers say; the cause, with its bucket, keys and
        # endpoint, goes to the log only.
        self._failed_version = version
        self._last_error = message
        self._observer.failed(message)
        if self._recommender is not None:
            logger.error("%s: %s; still serving %s", message, cause, self._recommender.version)
        else:
            logger.error("%s: %s", message, cause)

    def health(self, details: bool = False) -> tuple[int, dict[str, Any]]:
        """HTTP status and body for ``GET /health``.

        ``ok`` when a model is served and its last refresh went well,
        ``degraded`` otherwise (503 when nothing can be served). With
        *details* (secret-key callers): the model's version, times, counts and
        the last refresh error, never a bucket name, key or endpoint URL.
        """
        try:
            recommender = self.recommender()
        except ModelUnavailable:
            recommender = None
        status = "ok" if recommender is not None and self._last_error is None else "degraded"
        code = 200 if recommender is not None else 503
        if not details:
            return code, {"status": status}
        artifact = recommender.artifact if recommender is not None else None
        return code, {
            "status": status,
            "model_version": recommender.version if recommender is not None else None,
            "loaded_at": self._loaded_at,
            "created_at": artifact.created_at if artifact is not None else None,
            "algorithm": artifact.algorithm if artifact is not None else None,
            "training_cutoff": artifact.training_cutoff if artifact is not None else None,
            "counts": {
                "users": artifact.n_users,
                "items": artifact.n_items,
                "interactions": artifact.n_interactions,
                "factors": artifact.n_factors,
            } if artifact is not None else None,
            "approximate_search": self._approximate_search(recommender),
            "last_refresh_error": self._last_error,
        }

    @staticmethod
    def _approximate_search(recommender: Recommender | None) -> dict[str, Any] | None:
        """The model's approximate index as the manifest describes it, and whether answers use it."""
        entry = recommender.artifact.approximate_index if recommender is not None else None
        if entry is None:
            return None
        return {**entry, "in_use": recommender.approximate is not None}
