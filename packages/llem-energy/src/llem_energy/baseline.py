"""Idle baseline power, cached on disk per device so processes and experiments reuse it.

A figure is cached under its device (GPU UUID or RAPL domain id) and its conditions: the
state it was measured in, the power limit and the driver, so a figure of one state is
never used for another. One small JSON file per device and conditions, written
atomically (``llem_schema.io.atomic_write_bytes``): concurrent readers see the old figure or
the new one, never half of one. A file that is unreadable, corrupt, for another device,
stale or from the future is ignored (and will be re-measured), never a crash.
"""

import hashlib
import json
import logging
import math
import re
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Final

from llem_schema import BaselineMeasurement
from llem_schema.cache import cache_dir
from llem_schema.io import atomic_write_bytes

__all__ = ["CLOCK_SKEW_S", "BaselineCache", "default_cache_dir"]

logger = logging.getLogger(__name__)

_FORMAT: Final = 2
CLOCK_SKEW_S: Final = 60.0
"""A cached figure stamped further than this in the future is distrusted."""


def default_cache_dir(environ: Mapping[str, str] | None = None) -> Path:
    """``baselines`` in llem's cache directory: ``$LLEM_CACHE_DIR``, ``$XDG_CACHE_HOME/llem``
    or ``~/.cache/llem``, where the built-in model is kept too."""
    return cache_dir(environ) / "baselines"


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

    def path_for(self, device_id: str, conditions: str = "") -> Path:
        """The cache file of ``device_id`` under ``conditions`` (a readable name plus a hash
        of both, so neither ids nor conditions collide)."""
        readable = re.sub(r"[^A-Za-z0-9._-]", "_", device_id)[:80]
        digest = hashlib.sha256(f"{device_id}\0{conditions}".encode()).hexdigest()[:12]
        return self.directory / f"{readable}-{digest}.json"

    def load(self, device_id: str, conditions: str = "") -> BaselineMeasurement | None:
        """The figure cached for ``device_id`` under ``conditions`` (the state, power limit
        and driver it was measured with), with its age; None if missing, stale or unusable."""
        if self.ttl_s <= 0.0:
            return None
        found = self._read(device_id, conditions)
        if found is None or found.age_s is None or found.age_s > self.ttl_s:
            return None
        return found

    def idle_temperature_c(self, device_id: str, conditions: str = "") -> float | None:
        """The temperature of the last idle figure cached for ``device_id`` under
        ``conditions``, however old (a GPU's idle temperature barely moves); None if none."""
        found = self._read(device_id, conditions)
        return None if found is None else found.temperature_c

    def _read(self, device_id: str, conditions: str) -> BaselineMeasurement | None:
        path = self.path_for(device_id, conditions)
        try:
            document = json.loads(path.read_bytes())
            if (
                document.get("format") != _FORMAT
                or document.get("device_id") != device_id
                or document.get("conditions") != conditions
            ):
                raise ValueError("written for another device, conditions or format")
            power_w = float(document["power_w"])
            duration_s = float(document["duration_s"])
            measured_at = float(document["measured_at"])
            if not all(math.isfinite(v) and v >= 0.0 for v in (power_w, duration_s, measured_at)):
                raise ValueError("a value is negative or not finite")
            temperature = document.get("temperature_c")
            temperature_c = None if temperature is None else float(temperature)
        except FileNotFoundError:
            return None
        except (OSError, ValueError, TypeError, KeyError, AttributeError) as exc:
            logger.warning("ignoring unusable baseline cache file %s: %s", path, exc)
            return None
        age_s = self._now() - measured_at
        if age_s < -CLOCK_SKEW_S:
            logger.warning("ignoring baseline cache file %s: stamped in the future", path)
            return None
        return BaselineMeasurement(
            method="cached",
            power_w=power_w,
            age_s=max(0.0, age_s),
            duration_s=duration_s,
            state=document.get("state") if isinstance(document.get("state"), str) else None,
            temperature_c=temperature_c,
        )

    def store(
        self,
        device_id: str,
        power_w: float,
        duration_s: float,
        *,
        conditions: str = "",
        state: str | None = None,
        temperature_c: float | None = None,
    ) -> bool:
        """Save a fresh figure atomically; False (and a log line) if the cache is not writable."""
        document = {
            "format": _FORMAT,
            "device_id": device_id,
            "conditions": conditions,
            "state": state,
            "power_w": power_w,
            "duration_s": duration_s,
            "temperature_c": temperature_c,
            "measured_at": self._now(),
        }
        path = self.path_for(device_id, conditions)
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            atomic_write_bytes(path, json.dumps(document, sort_keys=True).encode())
        except OSError as exc:
            logger.warning("cannot cache the baseline of %s in %s: %s", device_id, path, exc)
            return False
        return True
