"""Keeps the live model in memory across warm invocations and follows the pointer."""

from __future__ import annotations

import logging
import re
import threading
import time
from datetime import datetime, timezone
from typing import Any, Callable, Protocol

from botocore.exceptions import BotoCoreError, ClientError

from chalicelib.errors import ModelUnavailable, RecommenderError
from chalicelib.models.store import ModelStore
from chalicelib.serving.recommender import Recommender

logger = logging.getLogger(__name__)

#: Locations in error messages (s3://bucket/key, endpoint URLs): logged, never answered.
_LOCATIONS = re.compile(r"(s3|https?)://[^\s'\"]+")


def public_message(message: str) -> str:
    """*message* without bucket names, keys or endpoint URLs, fit for an HTTP answer."""
    return _LOCATIONS.sub("<location>", message)


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

    The pointer is re-read at most every *refresh_seconds*. A new version is
    loaded beside the old one and swapped in with one assignment, so a
    request that already holds the old :class:`Recommender` finishes with it.
    A version that fails to load is logged and remembered (not retried until
    the pointer moves again) while the old one keeps serving.

    Parameters
    ----------
    store: where versions and the pointer live.
    refresh_seconds: minimum interval between two reads of the pointer.
    clock: monotonic clock, replaceable in tests.
    observer: told of each new version loaded and each failure to load one.
    """

    def __init__(self, store: ModelStore, refresh_seconds: float, clock: Callable[[], float] = time.monotonic,
                 observer: ReloadObserver | None = None) -> None:
        self._store = store
        self._observer = observer or _Unobserved()
        self._refresh_seconds = refresh_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._recommender: Recommender | None = None
        self._loaded_at: str | None = None
        self._checked_at: float | None = None
        self._failed_version: str | None = None
        self._last_error: str | None = None

    def recommender(self) -> Recommender:
        """The current recommender, loading or refreshing it when due.

        Raises
        ------
        ModelUnavailable
            When no model has ever been loaded and none can be now.
        """
        current = self._recommender
        due = self._checked_at is None or self._clock() - self._checked_at >= self._refresh_seconds
        if due or current is None:
            # Only one thread refreshes; the others go on with what they have.
            blocking = current is None
            if self._lock.acquire(blocking=blocking):
                try:
                    self._refresh()
                finally:
                    self._lock.release()
            current = self._recommender
        if current is None:
            raise ModelUnavailable(f"no model can be served: {self._public_error() or 'nothing published yet'}")
        return current

    def _public_error(self) -> str | None:
        return public_message(self._last_error) if self._last_error else None

    def _refresh(self) -> None:
        self._checked_at = self._clock()
        try:
            version = self._store.live_version()
        except RecommenderError as exc:
            self._record_failure(None, f"cannot read the model pointer: {exc}")
            return
        except (BotoCoreError, ClientError) as exc:
            self._record_failure(None, f"cannot read the model pointer: {type(exc).__name__}", exc)
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
        try:
            recommender = Recommender(self._store.load(version))
        except RecommenderError as exc:
            self._record_failure(version, f"model version {version} was refused: {exc}")
            return
        except (BotoCoreError, ClientError) as exc:
            self._record_failure(None, f"model version {version} could not be loaded: {type(exc).__name__}", exc)
            return
        except Exception as exc:  # noqa: BLE001 - whatever breaks a new version must not break serving
            logger.exception("unexpected failure loading model version %s", version)
            self._record_failure(version, f"model version {version} failed to load: {exc!r}")
            return
        previous = self._recommender.version if self._recommender else None
        self._recommender = recommender
        self._loaded_at = datetime.now(timezone.utc).isoformat(timespec="seconds")
        self._failed_version = None
        self._last_error = None
        self._observer.loaded(version)
        logger.info("serving model version %s (was %s)", version, previous)

    def _record_failure(self, version: str | None, message: str, cause: Exception | None = None) -> None:
        # Remember a refused version so a broken upload is not downloaded on
        # every refresh; transient failures (version None) are retried.
        self._failed_version = version
        self._last_error = message
        self._observer.failed(message)
        detail = f" ({cause})" if cause is not None else ""
        if self._recommender is not None:
            logger.error("%s%s; still serving %s", message, detail, self._recommender.version)
        else:
            logger.error("%s%s", message, detail)

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
            "last_refresh_error": self._public_error(),
        }
