"""Idle baseline power, cached on disk per device so processes and experiments reuse it.

One small JSON file per device (GPU UUID or RAPL domain id) in a cache directory, written
atomically (``llem_schema.io.atomic_write_bytes``): concurrent readers see the old figure or
the new one, never half of one. A file that is unreadable, corrupt, for another device,
stale or from the future is ignored (and will be re-measured), never a crash.
"""

import hashlib
import json
import logging
import math
import os
import re
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Final

from llem_schema import BaselineMeasurement
from llem_schema.io import atomic_write_bytes

__all__ = ["CLOCK_SKEW_S", "BaselineCache", "default_cache_dir"]

logger = logging.getLogger(__name__)

_FORMAT: Final = 1
CLOCK_SKEW_S: Final = 60.0
"""A cached figure stamped further than this in the future is distrusted."""


def default_cache_dir(environ: Mapping[str, str] | None = None) -> Path:
    """``$XDG_CACHE_HOME/llem/baselines``, or ``~/.cache/llem/baselines``."""
    env = os.environ if environ is None else environ
    base = env.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "llem" / "baselines"


class BaselineCache:
    """Idle power figures per device id, younger than ``ttl_s``, in ``directory``."""

    def __init__(
        self,
        directory: Path | None = None,
        *,
        ttl_s: float,
        now: Callable[[], float] = time.time,
    ) -> None:
        self.directory = directory if directory is not None else default_cache_dir()
        self.ttl_s = ttl_s
        self._now = now

    def path_for(self, device_id: str) -> Path:
        """The cache file of ``device_id`` (readable name plus a hash, so ids never collide)."""
        readable = re.sub(r"[^A-Za-z0-9._-]", "_", device_id)[:80]
        digest = hashlib.sha256(device_id.encode()).hexdigest()[:12]
        return self.directory / f"{readable}-{digest}.json"

    def load(self, device_id: str) -> BaselineMeasurement | None:
        """The cached figure of ``device_id`` with its age, or None (missing, stale, unusable)."""
        if self.ttl_s <= 0.0:
            return None
        path = self.path_for(device_id)
        try:
            document = json.loads(path.read_bytes())
            if document.get("format") != _FORMAT or document.get("device_id") != device_id:
                raise ValueError("written for another device or format")
            power_w = float(document["power_w"])
            duration_s = float(document["duration_s"])
            measured_at = float(document["measured_at"])
            if not all(math.isfinite(v) and v >= 0.0 for v in (power_w, duration_s, measured_at)):
                raise ValueError("a value is negative or not finite")
        except FileNotFoundError:
            return None
        except (OSError, ValueError, TypeError, KeyError, AttributeError) as exc:
            logger.warning("ignoring unusable baseline cache file %s: %s", path, exc)
            return None
        age_s = self._now() - measured_at
        if age_s < -CLOCK_SKEW_S:
            logger.warning("ignoring baseline cache file %s: stamped in the future", path)
            return None
        age_s = max(0.0, age_s)
        if age_s > self.ttl_s:
            return None
        return BaselineMeasurement(
            method="cached", power_w=power_w, age_s=age_s, duration_s=duration_s
        )

    def store(self, device_id: str, power_w: float, duration_s: float) -> bool:
        """Save a fresh figure atomically; False (and a log line) if the cache is not writable."""
        document = {
            "format": _FORMAT,
            "device_id": device_id,
            "power_w": power_w,
            "duration_s": duration_s,
            "measured_at": self._now(),
        }
        path = self.path_for(device_id)
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            atomic_write_bytes(path, json.dumps(document, sort_keys=True).encode())
        except OSError as exc:
            logger.warning("cannot cache the baseline of %s in %s: %s", device_id, path, exc)
            return False
        return True
