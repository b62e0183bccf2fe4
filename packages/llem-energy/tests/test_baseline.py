"""The on-disk baseline cache: reuse, expiry, corruption, concurrency."""

import json
import threading
from pathlib import Path

import pytest

from llem_energy import BaselineCache, default_cache_dir

UUID = "GPU-fa4e0000-0000-0000-0000-000000000000"


class Now:
    def __init__(self) -> None:
        self.t = 1_700_000_000.0

    def __call__(self) -> float:
        return self.t


def test_default_cache_dir_follows_llem_cache_dir_then_xdg(tmp_path: Path) -> None:
    """LLEM_CACHE_DIR moves the baselines with the built-in model."""
    moved = {"LLEM_CACHE_DIR": str(tmp_path / "mine"), "XDG_CACHE_HOME": str(tmp_path)}
    assert default_cache_dir(moved) == tmp_path / "mine" / "baselines"
    assert default_cache_dir({"XDG_CACHE_HOME": str(tmp_path)}) == tmp_path / "llem" / "baselines"
    assert default_cache_dir({}) == Path.home() / ".cache" / "llem" / "baselines"


def test_stored_figure_comes_back_cached_with_its_age(tmp_path: Path) -> None:
    now = Now()
    cache = BaselineCache(tmp_path / "c", ttl_s=3600.0, now=now)
    assert cache.load(UUID) is None
    assert cache.store(UUID, 61.5, 15.0)
    now.t += 120.0
    cached = cache.load(UUID)
    assert cached is not None
    assert (cached.method, cached.power_w, cached.age_s, cached.duration_s) == (
        "cached",
        61.5,
        120.0,
        15.0,
    )


def test_stale_and_ttl_zero_are_not_reused(tmp_path: Path) -> None:
    now = Now()
    BaselineCache(tmp_path, ttl_s=60.0, now=now).store(UUID, 50.0, 5.0)
    now.t += 61.0
    assert BaselineCache(tmp_path, ttl_s=60.0, now=now).load(UUID) is None
    assert BaselineCache(tmp_path, ttl_s=0.0, now=now).load(UUID) is None


@pytest.mark.parametrize(
    "content",
    [
        b"{not json",
        b"[]",
        b'{"format": 1, "device_id": "GPU-other", "power_w": 1, "duration_s": 1, "measured_at": 1}',
        b'{"format": 1, "device_id": "%s", "power_w": -5, "duration_s": 1, "measured_at": 1}',
        b'{"format": 1, "device_id": "%s", "power_w": "NaN", "duration_s": 1, "measured_at": 1}',
        b'{"format": 1, "device_id": "%s", "duration_s": 1, "measured_at": 1}',
        b"\xff\xfe",
    ],
)
def test_corrupt_files_are_ignored(
    tmp_path: Path, content: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    cache = BaselineCache(tmp_path, ttl_s=3600.0, now=Now())
    cache.path_for(UUID).write_bytes(content.replace(b"%s", UUID.encode()))
    assert cache.load(UUID) is None
    assert "ignoring unusable baseline cache file" in caplog.text
    assert cache.store(UUID, 40.0, 5.0)  # and re-measuring overwrites it
    assert cache.load(UUID) is not None


def test_a_figure_from_the_future_is_distrusted(tmp_path: Path) -> None:
    now = Now()
    cache = BaselineCache(tmp_path, ttl_s=3600.0, now=now)
    cache.store(UUID, 50.0, 5.0)
    now.t -= 3600.0
    assert cache.load(UUID) is None


def test_unwritable_cache_is_not_fatal(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert BaselineCache(blocker / "sub", ttl_s=60.0).store(UUID, 1.0, 1.0) is False


def test_ids_map_to_distinct_safe_file_names(tmp_path: Path) -> None:
    cache = BaselineCache(tmp_path, ttl_s=60.0)
    a, b = cache.path_for("rapl:host/x:package-0"), cache.path_for("rapl:host_x:package-0")
    assert a != b
    assert a.parent == tmp_path
    assert "/" not in a.name


def test_concurrent_writers_never_leave_a_torn_file(tmp_path: Path) -> None:
    cache = BaselineCache(tmp_path, ttl_s=3600.0)
    bad: list[object] = []

    def write(power: float) -> None:
        for _ in range(30):
            cache.store(UUID, power, 5.0)

    def read() -> None:
        for _ in range(100):
            found = cache.load(UUID)
            if found is not None and found.power_w not in (10.0, 20.0):
                bad.append(found)

    threads = [threading.Thread(target=write, args=(p,)) for p in (10.0, 20.0)]
    threads.append(threading.Thread(target=read))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert bad == []
    assert json.loads(cache.path_for(UUID).read_text())["power_w"] in (10.0, 20.0)
    assert [p.name for p in tmp_path.iterdir()] == [cache.path_for(UUID).name]  # no temp left
