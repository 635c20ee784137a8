"""Where the user-token signing secrets come from: the stage configuration, or AWS Secrets Manager.

A secret configured with ``value`` is used as it is (local stage, tests). One
configured with ``secret_arn`` is read from Secrets Manager on first use and
again after ``cache_seconds``, so a rotation reaches every warm instance
without a redeploy, and a request costs no Secrets Manager call.
"""

from __future__ import annotations

import threading
import time
from typing import Any, Callable

from botocore.exceptions import BotoCoreError, ClientError

from chalicelib.config import SigningSecretConfig
from chalicelib.errors import ConfigError


class SigningSecrets:
    """The signing secrets by id, in configured order (the first signs).

    Parameters
    ----------
    configured: the secrets as the settings give them.
    secrets_manager: a boto3 Secrets Manager client, or None when every secret is inline.
    cache_seconds: how long a secret read from Secrets Manager is kept.
    clock: monotonic clock (tests replace it).
    """

    def __init__(self, configured: tuple[SigningSecretConfig, ...], secrets_manager: Any = None,
                 cache_seconds: float = 300.0, clock: Callable[[], float] = time.monotonic) -> None:
        self._configured = configured
        self._client = secrets_manager
        self._cache_seconds = cache_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._cached: dict[str, str] | None = None
        self._read_at = 0.0

    def current(self) -> dict[str, str]:
        """Secret id -> secret, reading Secrets Manager when the cache is due.

        Raises
        ------
        ConfigError
            When a referenced secret cannot be read (and none was read before).
        """
        with self._lock:
            due = self._cached is None or self._clock() - self._read_at >= self._cache_seconds
            if due:
                try:
                    self._cached = {entry.secret_id: self._resolve(entry) for entry in self._configured}
                    self._read_at = self._clock()
                except ConfigError:
                    if self._cached is None:
                        raise
                    # Keep verifying with what was read last; the next request tries again.
            return dict(self._cached)

    def _resolve(self, entry: SigningSecretConfig) -> str:
        if entry.value is not None:
            return entry.value
        if self._client is None:
            raise ConfigError(f"user-token secret {entry.secret_id!r} is in Secrets Manager but no client was given")
        try:
            return self._client.get_secret_value(SecretId=entry.secret_arn)["SecretString"]
        except (BotoCoreError, ClientError, KeyError) as exc:
            raise ConfigError(f"cannot read user-token secret {entry.secret_id!r} from Secrets Manager: "
                              f"{type(exc).__name__}") from exc
