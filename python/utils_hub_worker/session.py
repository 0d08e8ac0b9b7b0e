"""One WebSocket between the worker and a hub, whichever side dialed: says ``hello``, waits for
``welcome``, runs the tasks that come, answers cancels, and drains."""
import asyncio
import json
import logging
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Tuple

from .codec import FrameReader, encode
from .description import fill_defaults
from .errors import HubError
from .task import RunningTask

log = logging.getLogger("utils_hub_worker")

#: The only protocol version this SDK speaks.
PROTOCOL_VERSION = 1
#: How many cancels of tasks not (or no longer) running a session remembers.
REMEMBERED_CANCELS = 1024


@dataclass(frozen=True)
class ConnectedInfo:
    """What the hub's ``welcome`` said, and where the connection goes."""

    service_id: int
    connection_id: str
    heartbeat_ms: int
    #: The hub's ``/worker`` URL (dialed) or the address of the hub that dialed us (listened).
    peer: str
    #: True when this worker dialed the hub, False when the hub dialed it.
    dialed: bool


@dataclass(frozen=True)
class SessionOptions:
    concurrency: int
    instance: str
    max_message_bytes: int
    handshake_timeout: float
    progress_interval: float


class Session:
    """One connection to a hub; ``serve()`` runs it to its end."""

    def __init__(self, ws: Any, me: Dict[str, Any], handler: Callable[..., Any], options: SessionOptions, peer: str, dialed: bool, emit: Callable[..., None]):
        self.ws = ws
        self.me = me
        self.handler = handler
        self.options = options
        self.peer = peer
        self.dialed = dialed
        #: The service's events: emit("connected", info), emit("task", id, attempt), emit("error", exc).
        self.emit = emit
        self.tasks: Dict[str, RunningTask] = {}
        self.welcomed = False
        self.refusal: Optional[HubError] = None
        self._state = "hello"
        self._canceled: "OrderedDict[str, str]" = OrderedDict()
        self._out: "asyncio.Queue[Optional[Tuple[str, List[bytes]]]]" = asyncio.Queue()
        self._idle = asyncio.Event()
        self._idle.set()

    # ---- sending ----

    def send(self, message: dict) -> None:
        """Encodes ``message`` (raises EncodeError) and queues its frames; one writer sends them
        in order, so that a message's binary frames follow its text frame."""
        if self._state == "closed":
            return
        self._out.put_nowait(encode(message))

    async def _writer(self) -> None:
        while True:
            item = await self._out.get()
            if item is None:
                return
            text, binaries = item
            await self.ws.send(text)
            for b in binaries:
                await self.ws.send(b)

    # ---- running ----

    async def serve(self) -> Tuple[int, str]:
        """Says hello, then reads until the socket closes; returns its close code and reason."""
        writer = asyncio.ensure_future(self._writer())
        hello = {
            "type": "hello",
            "protocol": PROTOCOL_VERSION,
            "me": self.me,
            "concurrency": self.options.concurrency,
            "instance": self.options.instance,
            # websockets' max_size: the hub sends no task over it.
            "max_message_bytes": self.options.max_message_bytes,
        }
        self.send(hello)
        loop = asyncio.get_running_loop()
        timer = loop.call_later(self.options.handshake_timeout, self._handshake_timeout)
        reader = FrameReader(self.options.max_message_bytes)
        try:
            async for frame in self.ws:
                try:
                    msg = reader.push(frame)
                except ValueError as err:
                    self.emit("error", ValueError(f"a broken message from {self.peer}: {err}"))
                    continue
                if msg is not None:
                    try:
                        self._on_message(msg)
                    except (KeyError, TypeError, ValueError) as err:
                        # A message missing its fields: reported, the connection goes on.
                        self.emit("error", ValueError(f"a broken {msg.get('type')!r} message from {self.peer}: {err!r}"))
        except Exception as err:  # noqa: BLE001 - any transport error ends the connection alike
            log.debug("connection to %s ended: %s", self.peer, err)
        finally:
            timer.cancel()
            self._state = "closed"
            self._out.put_nowait(None)
            for task in list(self.tasks.values()):
                task.drop("connection_lost")
            self._idle.set()
            writer.cancel()
        return self.ws.close_code or 1006, self.ws.close_reason or ""

    def _handshake_timeout(self) -> None:
        if not self.welcomed:
            self.emit("error", TimeoutError(f"no welcome from {self.peer} within {self.options.handshake_timeout} s"))
            asyncio.ensure_future(self.ws.close(1008, "no welcome in time"))

    def _on_message(self, msg: Dict[str, Any]) -> None:
        kind = msg.get("type")
        if kind == "welcome":
            if self._state != "hello":
                self.emit("error", ValueError(f"a second welcome from {self.peer}"))
                return
            self._state = "ready"
            self.welcomed = True
            info = ConnectedInfo(msg["service_id"], msg["connection_id"], msg["heartbeat_ms"], self.peer, self.dialed)
            self.emit("connected", info)
        elif kind == "error":
            err = HubError(str(msg.get("code")), str(msg.get("message")))
            if not self.welcomed:
                self.refusal = err
            self.emit("error", err)
        elif kind == "task":
            self._on_task(msg)
        elif kind == "cancel":
            task_id, reason = msg.get("task_id"), msg.get("reason", "client")
            task = self.tasks.get(task_id)
            if task is not None:
                task.abort(reason)
                return
            self._canceled.pop(task_id, None)
            self._canceled[task_id] = reason
            if len(self._canceled) > REMEMBERED_CANCELS:
                self._canceled.popitem(last=False)
        else:
            # A newer hub may send more: ignored.
            log.debug("an unknown message from %s: %s", self.peer, json.dumps(msg)[:200])

    def _on_task(self, msg: Dict[str, Any]) -> None:
        task_id = msg.get("task_id")
        if self._state == "hello" or not isinstance(task_id, str) or not isinstance(msg.get("args"), dict):
            self.emit("error", ValueError(f"a task from {self.peer} before welcome or without task_id and args"))
            return
        if task_id in self.tasks:
            self.emit("error", ValueError(f"task {task_id} is already running on this connection"))
            return
        reason = self._canceled.pop(task_id, None)
        if reason is not None:
            # Answering frees the hub's slot at once rather than after its cancel grace.
            code = "timeout" if reason == "timeout" else "canceled"
            self.send({"type": "failed", "task_id": task_id, "error": {"code": code, "message": f"the task was canceled ({reason}) before it started"}})
            return
        args = fill_defaults(self.me["input"], msg["args"])
        task = RunningTask(msg, args, self.handler, self.send, self.options.instance, self.options.progress_interval)
        self.tasks[task_id] = task
        self.emit("task", task_id, task.attempt)
        self._idle.clear()
        task.done.add_done_callback(lambda _f: self._task_done(task_id, task))

    def _task_done(self, task_id: str, task: RunningTask) -> None:
        if self.tasks.get(task_id) is task:
            del self.tasks[task_id]
        if not self.tasks:
            self._idle.set()

    # ---- stopping ----

    async def drain(self) -> None:
        """Sends ``drain`` (once welcomed) so that the hub sends no more tasks, and returns when
        no task is in flight any more or the socket closed."""
        if self._state == "ready":
            self._state = "draining"
            self.send({"type": "drain"})
        await self._idle.wait()

    def drop_all(self, reason: str) -> None:
        """Aborts every task in flight with ``reason`` and drops their answers."""
        for task in list(self.tasks.values()):
            task.drop(reason)

    async def close(self, code: int = 1000, reason: str = "") -> None:
        """Closes the socket (websockets waits for the hub's close frame up to its close_timeout)."""
        try:
            # Let the queued frames (the last answers) go out first, for up to 2 s.
            for _ in range(200):
                if self._out.empty() or self._state == "closed":
                    break
                await asyncio.sleep(0.01)
            await self.ws.close(code, reason)
        except Exception:  # noqa: BLE001 - closing a dead socket is fine
            pass
