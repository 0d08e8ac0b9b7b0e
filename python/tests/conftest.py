"""A real hub process for the SDK's tests: ``node server/dist/cli.js start --port 0`` on a fresh
SQLite file (the repository must be built: ``npx tsc -b``). ``UTILS_HUB_CLI`` names another CLI."""
import asyncio
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CLI = os.environ.get("UTILS_HUB_CLI", str(ROOT / "server" / "dist" / "cli.js"))
# The package is tested from its folder, installed or not.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


class HubProcess:
    """A running hub: ``url`` (http), ``worker_url`` (ws .../worker), ``db``; ``stop()`` ends it."""

    def __init__(self, db: str = None, env: dict = None, port: int = 0):
        self.db = db or "sqlite:" + os.path.join(tempfile.mkdtemp(prefix="uh-py-"), "hub.sqlite")
        full_env = {**os.environ, "HUB_LOG_LEVEL": "warn", **(env or {})}
        self.proc = subprocess.Popen(["node", CLI, "start", "--port", str(port), "--db", self.db], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=full_env, text=True)
        self.output = []
        found = threading.Event()
        self.url = None

        def read() -> None:
            for line in self.proc.stdout:
                self.output.append(line)
                m = re.search(r"utils-hub listening on (http://\S+)", line)
                if m and not found.is_set():
                    self.url = m.group(1)
                    found.set()

        threading.Thread(target=read, daemon=True).start()
        if not found.wait(30):
            self.stop()
            raise RuntimeError("the hub did not start: " + "".join(self.output)[-2000:])
        self.worker_url = self.url.replace("http://", "ws://") + "/worker"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def cli(self, *args: str) -> str:
        """Runs another command of the CLI on the same database."""
        return subprocess.run(["node", CLI, *args, "--db", self.db], check=True, capture_output=True, text=True).stdout


def http_sync(hub: HubProcess, method: str, path: str, body=None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(hub.url + path, data=data, method=method, headers={"Content-Type": "application/json"} if data else {})
    try:
        with urllib.request.urlopen(req, timeout=60) as res:
            return res.status, json.loads(res.read() or b"null")
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read() or b"null")


async def http(hub: HubProcess, method: str, path: str, body=None):
    """(status, JSON body) of a REST call, off the event loop."""
    return await asyncio.get_running_loop().run_in_executor(None, http_sync, hub, method, path, body)


async def until(pred, timeout: float = 10.0, what: str = "a condition"):
    """Waits for ``pred()`` (sync or async) to be truthy, polling, for at most ``timeout`` s."""
    end = time.monotonic() + timeout
    while True:
        value = pred()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


async def service_id(hub: HubProcess, name: str, timeout: float = 10.0) -> int:
    """The id of a live service, once the hub lists it."""

    async def find():
        _, body = await http(hub, "GET", "/services_list")
        return next((s["service_id"] for s in body if s["service_name"] == name), None)

    return await until(find, timeout, f"service {name}")


@pytest.fixture
def hub():
    h = HubProcess()
    yield h
    h.stop()


@pytest.fixture
def hub_factory():
    hubs = []

    def make(**kw):
        h = HubProcess(**kw)
        hubs.append(h)
        return h

    yield make
    for h in hubs:
        h.stop()
