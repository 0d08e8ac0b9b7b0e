"""One task on one connection: runs the handler with its context (cancellation, rate-limited
progress) and answers ``result`` or ``failed`` once, or not at all when the answer was dropped
(the connection died, or ``close()`` gave up on it)."""
import asyncio
import inspect
import logging
import threading
import time
from typing import Any, Callable, Dict, Optional

from .codec import EncodeError
from .errors import HubError, ServiceError, cut

log = logging.getLogger("utils_hub_worker")

#: Why a task was aborted: the hub's cancel reason (``client``, ``timeout``, ``shutdown``),
#: ``timeout`` also when the task's own ``timeout_ms`` passed, ``shutdown`` when ``close()`` gave
#: up waiting, ``connection_lost`` when the connection that carried it died (the hub re-dispatches it).
ABORT_MESSAGES = {
    "client": "the task was canceled by its client",
    "timeout": "the task ran past its deadline",
    "shutdown": "the worker or the hub is shutting down",
    "connection_lost": "the connection that carried the task was lost",
}


class TaskContext:
    """What a handler gets besides its args: ``task_id``, ``attempt`` (from 1), ``timeout_ms``,
    ``instance``, ``abort_reason`` (None until aborted), ``cancelled``, ``progress()``."""

    def __init__(self, task: "RunningTask", msg: Dict[str, Any], instance: str):
        self._task = task
        self.task_id: str = msg["task_id"]
        self.attempt: int = msg["attempt"]
        self.timeout_ms: int = msg["timeout_ms"]
        self.instance = instance

    @property
    def abort_reason(self) -> Optional[str]:
        """Why the task should stop (see ABORT_MESSAGES), or None."""
        return self._task.abort_reason

    @property
    def cancelled(self) -> bool:
        """True once the task should stop. A thread (sync) handler polls it; an async handler is
        also interrupted by ``asyncio.CancelledError`` at its next ``await``."""
        return self._task.abort_reason is not None

    async def wait_cancelled(self) -> str:
        """Waits until the task is aborted; returns the reason."""
        await self._task.aborted.wait()
        return self._task.abort_reason or "shutdown"

    def progress(self, fraction: Optional[float] = None, message: Optional[str] = None, data: Any = None) -> None:
        """Reports progress: ``fraction`` from 0 to 1 (clamped; NaN left out), a ``message`` for a
        person (cut at 65536 characters) and any JSON ``data`` (bytes and ``{"mime", "data": bytes}``
        in it go as attachments, such as a preview). Rate-limited per task (one message per
        ``progress_interval``, default 0.05 s): calls in between replace the waiting one, and the
        last one always goes out before the result. Does nothing once the task ended or was
        aborted. Never raises; callable from the event loop or from a handler's thread."""
        update: Dict[str, Any] = {}
        if isinstance(fraction, (int, float)) and not isinstance(fraction, bool) and fraction == fraction:
            update["progress"] = min(1.0, max(0.0, float(fraction)))
        if message is not None:
            update["message"] = cut(str(message))
        if data is not None:
            update["data"] = data
        self._task.push_progress(update)


class RunningTask:
    """A task being run, created by the connection for each ``task`` message."""

    def __init__(self, msg: Dict[str, Any], args: Dict[str, Any], handler: Callable[..., Any], send: Callable[[dict], None], instance: str, progress_interval: float):
        self.id: str = msg["task_id"]
        self.attempt: int = msg["attempt"]
        self.abort_reason: Optional[str] = None
        self.aborted = asyncio.Event()
        self._loop = asyncio.get_running_loop()
        self._send = send
        self._interval = progress_interval
        self._ended = False
        self._dropped = False
        self._pending: Optional[Dict[str, Any]] = None
        self._last_sent = float("-inf")
        self._progress_timer: Optional[asyncio.TimerHandle] = None
        self._inner: Optional[asyncio.Future] = None
        self._thread = threading.get_ident()
        self.ctx = TaskContext(self, msg, instance)
        # The hub sends `cancel` at the deadline too; the local timer is there for a cancel that is lost.
        self._deadline = self._loop.call_later(msg["timeout_ms"] / 1000, self.abort, "timeout")
        self.done = asyncio.ensure_future(self._run(handler, args))

    # ---- abort ----

    def abort(self, reason: str) -> None:
        """Marks the task aborted with ``reason`` (once) and interrupts an async handler; the task
        still answers when its handler ends."""
        if self.abort_reason is not None or self._ended:
            return
        self.abort_reason = reason
        self.aborted.set()
        self._pending = None  # nobody reads progress of an aborted task
        if self._inner is not None and not isinstance(self._inner, _ThreadFuture):
            self._inner.cancel()

    def drop(self, reason: str) -> None:
        """Aborts with ``reason`` and drops the answer: nothing more is sent for this task."""
        self._dropped = True
        self.abort(reason)

    # ---- progress ----

    def push_progress(self, update: Dict[str, Any]) -> None:
        if threading.get_ident() != self._thread:
            self._loop.call_soon_threadsafe(self.push_progress, update)
            return
        if self._ended or self.abort_reason is not None:
            return
        now = time.monotonic()
        wait = self._last_sent + self._interval - now
        if self._pending is None and wait <= 0:
            self._emit(update, now)
            return
        self._pending = update
        if self._progress_timer is None:
            self._progress_timer = self._loop.call_later(max(0.0, wait), self._flush)

    def _flush(self) -> None:
        if self._progress_timer is not None:
            self._progress_timer.cancel()
            self._progress_timer = None
        pending, self._pending = self._pending, None
        if pending is not None and not self._ended and not self._dropped:
            self._emit(pending, time.monotonic())

    def _emit(self, update: Dict[str, Any], now: float) -> None:
        self._last_sent = now
        try:
            self._send({"type": "progress", "task_id": self.id, **update})
        except EncodeError as err:
            log.warning("task %s: a progress message could not be sent: %s", self.id, err)

    # ---- run and answer ----

    async def _run(self, handler: Callable[..., Any], args: Dict[str, Any]) -> None:
        try:
            if inspect.iscoroutinefunction(handler):
                self._inner = asyncio.ensure_future(handler(args, self.ctx))
            else:
                # A plain function runs in a thread, so that a CPU-bound model does not stop the
                # connection (pings, cancels, other tasks).
                self._inner = _ThreadFuture(self._loop.run_in_executor(None, _call, handler, args, self.ctx))
            result = await asyncio.shield(self._inner) if isinstance(self._inner, _ThreadFuture) else await self._inner
            if inspect.isawaitable(result):
                result = await result
        except asyncio.CancelledError:
            if self.abort_reason is None:
                raise
            self._answer({"type": "failed", "task_id": self.id, "error": self._abort_error()})
        except BaseException as err:  # noqa: BLE001 - every failure of a handler is the task's answer
            self._answer({"type": "failed", "task_id": self.id, "error": self._failure(err)})
        else:
            self._answer({"type": "result", "task_id": self.id, "result": result})

    def _abort_error(self) -> Dict[str, str]:
        reason = self.abort_reason or "shutdown"
        return {"code": "timeout" if reason == "timeout" else "canceled", "message": ABORT_MESSAGES[reason]}

    def _failure(self, err: BaseException) -> Dict[str, str]:
        if isinstance(err, (ServiceError, HubError)):
            return {"code": err.code, "message": cut(err.message)}
        if self.abort_reason is not None:
            return self._abort_error()
        return {"code": "internal", "message": cut(str(err) or type(err).__name__)}

    def _answer(self, message: Dict[str, Any]) -> None:
        if self._ended:
            return
        if not self._dropped and self.abort_reason is None:
            self._flush()
        self._ended = True
        self._pending = None
        self._deadline.cancel()
        if self._progress_timer is not None:
            self._progress_timer.cancel()
        if self._dropped:
            return
        try:
            self._send(message)
        except EncodeError as err:
            self._send({"type": "failed", "task_id": self.id, "error": {"code": "internal", "message": cut(f"the {message['type']} could not be sent: {err}")}})


def _call(handler: Callable[..., Any], args: Dict[str, Any], ctx: TaskContext) -> Any:
    return handler(args, ctx)


class _ThreadFuture(asyncio.Future):
    """Marks the future of a handler running in a thread: a thread cannot be interrupted, so an
    abort only sets ``ctx.cancelled`` for it to poll."""

    def __init__(self, inner: asyncio.Future):
        super().__init__()
        inner.add_done_callback(self._copy)

    def _copy(self, inner: asyncio.Future) -> None:
        if self.done():
            return
        if inner.cancelled():
            self.cancel()
        elif inner.exception() is not None:
            self.set_exception(inner.exception())
        else:
            self.set_result(inner.result())
