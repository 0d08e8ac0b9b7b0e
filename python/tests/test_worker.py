"""The Python worker SDK against a real hub process: tasks, progress, attachments, ServiceError,
cancellation, frame limits, several hub URLs, the listen mode, and the drain on SIGTERM."""
import asyncio
import base64
import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import websockets

from conftest import http, service_id, until
from utils_hub_worker import Arg, Service, ServiceError, media, service

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "shout.py"


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 60))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_serves_a_task_with_defaults_progress_and_media(hub):
    @service(
        name="py-thumb",
        description="Reverses an image's bytes and reports progress",
        input=[Arg("image", "image", "The picture"), Arg("times", "int", "How often", default=2, min=1, max=5)],
    )
    async def thumb(args, ctx):
        ctx.progress(0.25, "reading", {"preview": media(b"pre", "image/png", "p.png")})
        await asyncio.sleep(0.1)
        ctx.progress(0.75, "writing")
        img = args["image"]
        return {"image": media(img["data"][::-1], img["mime"], "out.png"), "times": args["times"], "attempt": ctx.attempt}

    async def main():
        info = await thumb.connect(hub.worker_url)
        assert info.dialed and info.service_id >= 0
        events = []
        async with websockets.connect(hub.url.replace("http", "ws") + "/client") as client:
            await client.recv()  # services
            await client.send(json.dumps({"type": "add_task", "ref": "r", "service_id": info.service_id, "args": {"image": {"$attachment": 0, "mime": "image/png"}}, "attachments": 1}))
            await client.send(b"\x01\x02\x03")
            binaries = []
            while True:
                frame = await client.recv()
                if isinstance(frame, bytes):
                    binaries.append(frame)
                    continue
                msg = json.loads(frame)
                events.append(msg)
                if msg["type"] in ("result", "failed"):
                    break
            if events[-1].get("attachments"):
                while len(binaries) < sum(e.get("attachments", 0) for e in events):
                    binaries.append(await client.recv())
        await thumb.close()
        return events, binaries

    events, binaries = run(main())
    kinds = [e["type"] for e in events]
    assert kinds[:2] == ["accepted", "started"]
    progress = [e for e in events if e["type"] == "progress"]
    assert [p["progress"] for p in progress] == [0.25, 0.75]
    assert progress[0]["message"] == "reading" and progress[0]["data"]["preview"]["$attachment"] == 0
    result = events[-1]
    assert result["type"] == "result", result
    assert result["result"]["times"] == 2 and result["result"]["attempt"] == 1
    assert result["result"]["image"]["mime"] == "image/png" and result["result"]["image"]["name"] == "out.png"
    assert binaries == [b"pre", b"\x03\x02\x01"]


def test_rest_service_error_internal_and_sync_handlers(hub):
    def divide(args, ctx):  # a plain function: runs in a thread
        if args["b"] == 0:
            raise ServiceError("division_by_zero", "cannot divide by zero")
        if args["b"] < 0:
            raise RuntimeError("negative divisor")
        return args["a"] / args["b"]

    svc = Service("py-divide", "Divides a by b", [Arg("a", "float", "dividend"), Arg("b", "float", "divisor")], divide, concurrency=2)

    async def main():
        info = await svc.connect(hub.worker_url)
        ok = await http(hub, "POST", "/add_task", {"service_id": info.service_id, "args": [6, 3]})
        bad = await http(hub, "POST", "/add_task", {"service_id": info.service_id, "args": [1, 0]})
        crash = await http(hub, "POST", "/add_task", {"service_id": info.service_id, "args": [1, -1]})
        await svc.close()
        return ok, bad, crash

    ok, bad, crash = run(main())
    assert ok == (200, {"task_id": ok[1]["task_id"], "status": "succeeded", "result": 2})
    assert bad[0] == 502 and bad[1]["error"]["code"] == "task_failed"
    assert bad[1]["error"]["worker_error"] == {"code": "division_by_zero", "message": "cannot divide by zero"}
    assert crash[1]["error"]["worker_error"] == {"code": "internal", "message": "negative divisor"}


def test_cancellation_interrupts_an_async_handler_and_frees_the_slot(hub):
    seen = {}

    @service(name="py-sleep", description="Sleeps", input=[Arg("seconds", "float", "how long")])
    async def sleeper(args, ctx):
        try:
            await asyncio.sleep(args["seconds"])
            return "woke"
        except asyncio.CancelledError:
            seen["reason"] = ctx.abort_reason
            raise

    async def main():
        info = await sleeper.connect(hub.worker_url)
        _, queued = await http(hub, "POST", "/add_task?wait=false", {"service_id": info.service_id, "args": [30]})
        await until(lambda: sleeper.in_flight == 1, what="the task to start")
        status, canceled = await http(hub, "DELETE", f"/tasks/{queued['task_id']}")
        await until(lambda: "reason" in seen and sleeper.in_flight == 0, what="the handler to stop")
        # The slot is free again (concurrency 1): the next task runs at once.
        nxt = await http(hub, "POST", "/add_task", {"service_id": info.service_id, "args": [0.01], "queue_timeout_ms": 3000})
        await sleeper.close()
        return status, canceled, nxt

    status, canceled, nxt = run(main())
    assert status == 200 and canceled["status"] == "canceled"
    assert seen["reason"] == "client"
    assert nxt[0] == 200 and nxt[1]["result"] == "woke"


def test_announces_its_frame_limit_and_the_hub_keeps_big_tasks_from_it(hub):
    svc = Service("py-small", "Counts characters", [Arg("s", "str", "a text")], lambda args, ctx: len(args["s"]))

    async def main():
        info = await svc.connect(hub.worker_url, max_message_bytes=4096)
        big = await http(hub, "POST", "/add_task", {"service_id": info.service_id, "args": ["x" * 10000]})
        small = await http(hub, "POST", "/add_task", {"service_id": info.service_id, "args": ["x" * 100]})
        await svc.close()
        return big, small

    big, small = run(main())
    assert big[0] == 413 and big[1]["error"]["code"] == "payload_too_large"
    assert small[1]["result"] == 100


def test_default_frame_limit_takes_a_task_over_websockets_own_1_mib(hub):
    svc = Service("py-large", "Counts bytes", [Arg("f", "file", "a file")], lambda args, ctx: len(args["f"]["data"]))

    async def main():
        info = await svc.connect(hub.worker_url)
        data = base64.b64encode(os.urandom(3 * 1024 * 1024)).decode()
        res = await http(hub, "POST", "/add_task", {"service_id": info.service_id, "args": [{"mime": "application/octet-stream", "data": data}]})
        await svc.close()
        return res

    status, body = run(main())
    assert status == 200 and body["result"] == 3 * 1024 * 1024


def test_moves_to_the_next_hub_url_when_one_is_lost(hub_factory):
    first, second = hub_factory(), hub_factory()
    dead = f"ws://127.0.0.1:{free_port()}/worker"
    svc = Service("py-roam", "Says where it runs", [], lambda args, ctx: ctx.instance, concurrency=1)

    async def main():
        info = await svc.connect([dead, first.worker_url, second.worker_url], min_delay=0.05, max_delay=0.2, instance="roamer")
        assert info.peer == first.worker_url
        ok = await http(first, "POST", "/add_task", {"service_id": info.service_id, "args": []})
        first.stop()
        sid = await service_id(second, "py-roam")
        again = await http(second, "POST", "/add_task", {"service_id": sid, "args": []})
        await svc.close()
        return ok, again

    ok, again = run(main())
    assert ok[1]["result"] == "roamer" and again[1]["result"] == "roamer"


def test_listen_mode_serves_me_and_a_hub_that_dials(hub_factory):
    hub = hub_factory(env={"HUB_DIAL_SECRET": "s3cret"})
    svc = Service("py-listened", "Doubles a number", [Arg("x", "int", "a number")], lambda args, ctx: args["x"] * 2)

    async def main():
        url = await svc.listen(0, secret="s3cret")
        loop = asyncio.get_running_loop()

        def get(path, headers):
            import urllib.error
            import urllib.request

            try:
                with urllib.request.urlopen(urllib.request.Request(url + path, headers=headers), timeout=5) as r:
                    return r.status, json.loads(r.read())
            except urllib.error.HTTPError as err:
                return err.code, None

        me = await loop.run_in_executor(None, get, "/me", {"Authorization": "Bearer s3cret"})
        refused = await loop.run_in_executor(None, get, "/me", {})
        await loop.run_in_executor(None, hub.cli, "workers", "add", url)
        sid = await service_id(hub, "py-listened", 15)
        res = await http(hub, "POST", "/add_task", {"service_id": sid, "args": [21]})
        await svc.close()
        return me, refused, res

    me, refused, res = run(main())
    assert me[0] == 200 and me[1]["name"] == "py-listened" and me[1]["input"][0]["argument_name"] == "x"
    assert refused[0] == 401
    assert res[1]["result"] == 42


def test_the_example_drains_on_sigterm(hub):
    # The package from this folder, whether installed or not.
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(EXAMPLE.parents[1]), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.Popen([sys.executable, str(EXAMPLE), "--hub", hub.worker_url], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    try:
        line = proc.stdout.readline()
        assert "connected to" in line, line

        async def main():
            sid = await service_id(hub, "shout")
            call = asyncio.ensure_future(http(hub, "POST", "/add_task", {"service_id": sid, "args": {"text": "hi", "times": 3, "delay": 1.0}}))

            async def running():
                _, info = await http(hub, "GET", f"/service_info/{sid}")
                return info["in_flight"] == 1

            await until(running, what="the task to run")
            proc.send_signal(signal.SIGTERM)
            return await call

        status, body = run(main())
        assert status == 200, body
        assert body["result"] == {"text": "HI HI HI"}
        assert proc.wait(15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_bad_descriptions_name_their_field():
    import pytest

    with pytest.raises(ValueError, match=r"input\[1\].argument_name: duplicate \"a\""):
        Service("dup", "d", [Arg("a", "int"), Arg("a", "str")], lambda a, c: None)
    with pytest.raises(ValueError, match="description"):
        Service("nodesc", None, [], lambda a, c: None)
    with pytest.raises(ValueError, match=r"input\[0\].type"):
        Service("badtype", "d", [{"argument_name": "a", "type": "integer"}], lambda a, c: None)
    with pytest.raises(ValueError, match=r"input\[0\].default"):
        Service("baddefault", "d", [Arg("a", "int", default="x")], lambda a, c: None)


def test_events_and_a_refusal_reported_with_the_hubs_code(hub):
    token = hub.cli("tokens", "create", "py-events").split()[0]
    svc = Service("py-events", "Says ok", [], lambda args, ctx: "ok")
    seen = []
    svc.on("connected", lambda info: seen.append(("connected", info.service_id)))
    svc.on("task", lambda task_id, attempt: seen.append(("task", attempt)))
    svc.on("disconnected", lambda code, reason: seen.append(("disconnected", code)))
    errors = []

    @svc.on("error")
    def on_error(err):
        errors.append(err)

    async def main():
        refused = asyncio.ensure_future(svc.connect(hub.worker_url, token="wrong", min_delay=0.05, max_delay=0.1))
        await until(lambda: errors, what="the refusal")
        other = Service("py-events", "Says ok", [], lambda args, ctx: "ok")
        info = await other.connect(hub.worker_url, token=token, instance="good")
        res = await http(hub, "POST", "/add_task", {"service_id": info.service_id, "args": []})
        await other.close()
        await svc.close()
        try:
            await refused
        except RuntimeError as err:
            return res, str(err)
        return res, None

    res, refused_error = run(main())
    assert errors[0].code == "unauthorized", errors
    assert "closed before any welcome" in refused_error
    # Refused at the upgrade (HTTP 401, before any frame): never connected.
    assert not any(e[0] == "connected" for e in seen)
    assert res[1]["result"] == "ok"


def test_a_thread_handler_reports_progress_and_sees_cancellation(hub):
    import time as _time

    state = {}

    def slow(args, ctx):
        for i in range(200):
            if ctx.cancelled:
                state["reason"] = ctx.abort_reason
                raise RuntimeError("stopped")
            ctx.progress(i / 200, f"step {i}")
            _time.sleep(0.02)
        return "done"

    svc = Service("py-thread", "Works in a thread", [], slow, progress_interval=0.01)

    async def main():
        info = await svc.connect(hub.worker_url)
        _, queued = await http(hub, "POST", "/add_task?wait=false", {"service_id": info.service_id, "args": []})

        async def advanced():
            _, view = await http(hub, "GET", f"/tasks/{queued['task_id']}")
            return (view["progress"] or 0) > 0.05 and view

        view = await until(advanced, what="progress from the thread")
        await http(hub, "DELETE", f"/tasks/{queued['task_id']}")
        await until(lambda: "reason" in state, what="the thread to see the cancel")
        await svc.close()
        return view

    view = run(main())
    assert view["status"] == "running" and view["message"].startswith("step ")
    assert state["reason"] == "client"


def test_redials_a_hub_that_restarts_on_the_same_address(hub_factory):
    port = free_port()
    first = hub_factory(port=port)
    svc = Service("py-restart", "Says ok", [], lambda args, ctx: "ok")
    connections = []
    svc.on("connected", lambda info: connections.append(info.connection_id))

    async def main():
        await svc.connect(first.worker_url, min_delay=0.05, max_delay=0.3)
        first.stop()
        again = hub_factory(port=port, db=first.db)
        await until(lambda: len(connections) == 2, 20, "a second welcome")
        sid = await service_id(again, "py-restart")
        res = await http(again, "POST", "/add_task", {"service_id": sid, "args": []})
        await svc.close()
        return res

    status, body = run(main())
    assert status == 200 and body["result"] == "ok"
    assert connections[0] != connections[1]
