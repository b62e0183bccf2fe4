"""Fixtures of the end-to-end tests: a private cache (tiny model, baselines) shared by the
session, the environment every `llem` subprocess runs with (offline, wide terminal), a
headless Chromium to open reports in, and a one-node Slurm cluster."""

import base64
import contextlib
import importlib.util
import json
import os
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest


@pytest.fixture(scope="session")
def llem_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("llem-cache")


@pytest.fixture
def llem_env(llem_cache: Path) -> dict[str, str]:
    return os.environ | {
        "LLEM_CACHE_DIR": str(llem_cache),
        "XDG_CACHE_HOME": str(llem_cache),
        "HF_HUB_OFFLINE": "1",
        "COLUMNS": "200",
    }


@pytest.fixture
def fresh_baselines(tmp_path: Path, llem_cache: Path) -> Path:
    """A cache directory for ``LLEM_CACHE_DIR`` that shares the session's built models but
    has no idle-power baselines yet (they are cached beside the models, for an hour)."""
    cache = tmp_path / "cache"
    (llem_cache / "models").mkdir(parents=True, exist_ok=True)
    cache.mkdir()
    (cache / "models").symlink_to(llem_cache / "models", target_is_directory=True)
    return cache


CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")


class Browser:
    """Debian's headless Chromium, driven through chromedriver's WebDriver HTTP interface
    (httpx2, which llem already has). The performance log records every request a page makes,
    so a test sees exactly what left the file."""

    def __init__(self, base_url: str) -> None:
        import httpx2

        self._http = httpx2.Client(base_url=base_url, timeout=60.0)
        capabilities = {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": str(CHROMIUM),
                "args": [
                    "--headless=new",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-dev-shm-usage",
                ],
            },
            "goog:loggingPrefs": {"performance": "ALL"},
        }
        reply = self._http.post("/session", json={"capabilities": {"alwaysMatch": capabilities}})
        reply.raise_for_status()
        self._session = f"/session/{reply.json()['value']['sessionId']}"

    def _call(self, method: str, path: str, body: object = None) -> Any:
        reply = self._http.request(method, self._session + path, json=body)
        reply.raise_for_status()
        return reply.json()["value"]

    def open(self, page: Path, *, width: int = 1280, height: int = 800) -> list[str]:
        """Show ``page`` in a window of ``width`` x ``height``; return every URL it requested."""
        self._call("POST", "/window/rect", {"width": width, "height": height})
        self._call("POST", "/se/log", {"type": "performance"})  # drop what came before
        self._call("POST", "/url", {"url": page.resolve().as_uri()})
        urls = []
        for entry in self._call("POST", "/se/log", {"type": "performance"}):
            message = json.loads(entry["message"])["message"]
            if message["method"] == "Network.requestWillBeSent":
                urls.append(message["params"]["request"]["url"])
        return urls

    def script(self, source: str) -> Any:
        """The value of the JavaScript function body ``source`` in the open page."""
        return self._call("POST", "/execute/sync", {"script": source, "args": []})

    def screenshots(self, selector: str) -> list[bytes]:
        """A PNG of each element the CSS ``selector`` finds, scrolled into view."""
        found = self._call("POST", "/elements", {"using": "css selector", "value": selector})
        shots = []
        for element in found:
            (element_id,) = element.values()
            shots.append(base64.b64decode(self._call("GET", f"/element/{element_id}/screenshot")))
        return shots

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._http.delete(self._session)
        self._http.close()


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    """Headless Chromium for the whole session. Missing, it fails the tests in CI (which
    installs it) and skips them elsewhere, saying what to install."""
    if not (CHROMIUM.is_file() and CHROMEDRIVER.is_file()):
        reason = "Debian's chromium and chromium-driver are not installed (apt-get install chromium chromium-driver)"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    driver = subprocess.Popen(
        [str(CHROMEDRIVER), f"--port={port}"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        _wait_until_ready(f"http://127.0.0.1:{port}")
        session = Browser(f"http://127.0.0.1:{port}")
        try:
            yield session
        finally:
            session.close()
    finally:
        driver.terminate()
        driver.wait(timeout=10)


def _wait_until_ready(base_url: str, timeout_s: float = 20.0) -> None:
    import httpx2

    deadline = time.monotonic() + timeout_s
    while True:
        try:
            if httpx2.get(f"{base_url}/status", timeout=2.0).json()["value"]["ready"]:
                return
        except httpx2.TransportError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"chromedriver did not answer at {base_url} within {timeout_s} s")
        time.sleep(0.05)


LOCAL_SLURM = Path(__file__).parent.parent / "scripts" / "local_slurm.py"


def _local_slurm() -> ModuleType:
    """``scripts/local_slurm.py``, which starts and stops the cluster (loaded from its file:
    the tests run with ``--import-mode=importlib`` and ``scripts`` is no package)."""
    spec = importlib.util.spec_from_file_location("local_slurm", LOCAL_SLURM)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {LOCAL_SLURM}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@dataclass(frozen=True)
class SlurmCluster:
    """A one-node Slurm cluster of this host, for the session: ``env`` points Slurm's commands
    at it (``SLURM_CONF``)."""

    root: Path
    env: dict[str, str]


@pytest.fixture(scope="session")
def slurm_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SlurmCluster]:
    """Debian's munge and Slurm daemons started as a one-node cluster by
    ``scripts/local_slurm.py`` (state, spool, logs and the munge key in a temporary directory;
    its own ports), stopped at the end. Missing (or not root), it fails the tests in CI (which
    installs them) and skips them elsewhere."""
    local_slurm = _local_slurm()
    reason: str | None = local_slurm.unavailable()
    if reason is not None:
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    root = tmp_path_factory.mktemp("slurm")
    additions: dict[str, str] = local_slurm.start(root)
    try:
        yield SlurmCluster(root, os.environ | additions)
    finally:
        local_slurm.stop(root)
