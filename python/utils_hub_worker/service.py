"""A service: its description and handler, connected to hubs (``connect``: the worker dials) or
served for hubs to dial (``listen``), and stopped with a drain (``close``, or SIGTERM in ``run``)."""
import asyncio
import http
import json
import logging
import os
import random
import signal
import socket
from typing import Any, Callable, Dict, List, Optional, Sequence, Set, Union

import websockets
import websockets.exceptions

from .description import Arg, describe
from .errors import HubError
from .session import ConnectedInfo, Session, SessionOptions

log = logging.getLogger("utils_hub_worker")

#: Largest message taken from the hub by default, in bytes (128 MiB; websockets' own default is
#: 1 MiB). It is websockets' ``max_size`` and is announced in ``hello`` as ``max_message_bytes``.
DEFAULT_MAX_MESSAGE_BYTES = 128 * 1024 * 1024
#: Least ``max_message_bytes`` the hub takes.
MIN_MESSAGE_BYTES = 1024

Handler = Callable[[Dict[str, Any], Any], Any]
#: The events of a service (see ``Service.on``).
EVENTS = ("connected", "disconnected", "task", "error")
Args = Sequence[Union[Arg, Dict[str, Any]]]


def backoff_delay(attempt: int, min_delay: float, max_delay: float) -> float:
    """The delay before redial number ``attempt`` (from 0), in seconds: a ceiling from
    ``min_delay`` doubling up to ``max_delay``, the delay drawn between half and all of it."""
    ceiling = min(max_delay, min_delay * (2 ** min(attempt, 32)))
    return random.uniform(ceiling / 2, ceiling)


class Service:
    """A service: ``name`` (1 to 64 of ``A-Z a-z 0-9 _ . -``), ``description`` (required),
    ``input`` (Arg objects or ``/me`` dicts), optional ``output``, ``concurrency`` (tasks one
    connection takes at once, 1 to 1024, default 1), ``progress_interval`` (least seconds between
    two progress messages of a task, default 0.05) and the ``handler(args, ctx)``, async or plain
    (a plain one runs in a thread). Raises ValueError naming a bad field at once."""

    def __init__(self, name: str, description: str, input: Args, handler: Optional[Handler] = None, *, output: Optional[Args] = None, concurrency: int = 1, progress_interval: float = 0.05):
        self.me = describe(name, description, input, output)
        self.name = name
        self.concurrency = _int("concurrency", concurrency, 1, 1024)
        self.progress_interval = float(progress_interval)
        self._handler = handler
        self._sessions: Set[Session] = set()
        self._loops: List["asyncio.Task[None]"] = []
        self._servers: List[Any] = []
        self._closing = False
        self._closed: Optional["asyncio.Future[None]"] = None
        self._wake: Optional[asyncio.Event] = None
        self._listeners: Dict[str, List[Callable[..., Any]]] = {e: [] for e in EVENTS}

    def handler(self, fn: Handler) -> Handler:
        """Decorator: sets the handler. ``@svc.handler`` over ``async def run(args, ctx)``."""
        self._handler = fn
        return fn

    def on(self, event: str, listener: Optional[Callable[..., Any]] = None) -> Any:
        """Adds a listener of ``event``: ``connected(info)`` (a hub welcomed a connection),
        ``disconnected(code, reason)`` (a connection closed), ``task(task_id, attempt)`` (a task
        started), ``error(exc)`` (a failed dial, a hub's refusal as a HubError with its ``code``,
        a broken message). Without an ``error`` listener, errors go to the ``utils_hub_worker``
        logger. Usable as a decorator: ``@svc.on("error")``."""
        if event not in self._listeners:
            raise ValueError(f"unknown event {event!r}; one of {', '.join(EVENTS)}")
        if listener is None:
            return lambda fn: self.on(event, fn)
        self._listeners[event].append(listener)
        return listener

    def _emit(self, event: str, *args: Any) -> None:
        listeners = self._listeners[event]
        if event == "error" and not listeners:
            log.warning("%s", args[0])
        elif event == "connected" and not listeners:
            info = args[0]
            log.info("connected to %s as service %s (connection %s)", info.peer, info.service_id, info.connection_id)
        for listener in list(listeners):
            try:
                listener(*args)
            except Exception:  # noqa: BLE001 - a listener's fault must not stop the connection
                log.exception("a %s listener failed", event)

    @property
    def in_flight(self) -> int:
        """Tasks running now, over every connection."""
        return sum(len(s.tasks) for s in self._sessions)

    def _options(self, concurrency: Optional[int], instance: Optional[str], max_message_bytes: Optional[int], handshake_timeout: float) -> SessionOptions:
        if self._handler is None:
            raise ValueError(f"service {self.name}: no handler (pass handler= or use @service.handler)")
        if self._closing:
            raise RuntimeError(f"service {self.name} is closed")
        return SessionOptions(
            concurrency=_int("concurrency", self.concurrency if concurrency is None else concurrency, 1, 1024),
            instance=(instance or f"{socket.gethostname()}-{os.getpid()}")[:256],
            max_message_bytes=_int("max_message_bytes", DEFAULT_MAX_MESSAGE_BYTES if max_message_bytes is None else max_message_bytes, MIN_MESSAGE_BYTES, 2**53 - 1),
            handshake_timeout=float(handshake_timeout),
            progress_interval=self.progress_interval,
        )

    # ---- the worker dials ----

    async def connect(self, urls: Union[str, Sequence[str]], *, token: Optional[str] = None, concurrency: Optional[int] = None, instance: Optional[str] = None, max_message_bytes: Optional[int] = None, min_delay: float = 0.5, max_delay: float = 30.0, handshake_timeout: float = 10.0) -> ConnectedInfo:
        """Dials the hub's ``/worker`` (``ws://`` or ``wss://``; ``http(s)://`` is taken as
        ``ws(s)://``) with ``Authorization: Bearer <token>``, says ``hello`` and serves tasks.
        With several URLs, one connection goes to one hub at a time: a lost, refused or
        unreachable hub is left for the next URL, after a jittered backoff from ``min_delay``
        doubling to ``max_delay`` seconds, reset by a welcome. Returns the first welcome and keeps
        going in the background until ``close()``."""
        url_list = [urls] if isinstance(urls, str) else list(urls)
        if not url_list:
            raise ValueError("connect: at least one hub URL")
        url_list = [_ws_url(u) for u in url_list]
        if not 0 < min_delay <= max_delay:
            raise ValueError("connect: min_delay must be > 0 and <= max_delay")
        options = self._options(concurrency, instance, max_message_bytes, handshake_timeout)
        first: "asyncio.Future[ConnectedInfo]" = asyncio.get_running_loop().create_future()
        loop_task = asyncio.ensure_future(self._dial_loop(url_list, token, options, min_delay, max_delay, first))
        self._loops.append(loop_task)
        closed = self._closed_future()
        done, _ = await asyncio.wait({first, closed}, return_when=asyncio.FIRST_COMPLETED)
        if first in done:
            return first.result()
        raise RuntimeError(f"service {self.name} was closed before any welcome")

    async def _serve(self, session: Session) -> "tuple[int, str]":
        """Serves one connection, dialed or accepted, until it closes; reports ``disconnected``."""
        self._sessions.add(session)
        try:
            code, reason = await session.serve()
        finally:
            self._sessions.discard(session)
        self._emit("disconnected", code, reason)
        return code, reason

    async def _dial_loop(self, urls: List[str], token: Optional[str], options: SessionOptions, min_delay: float, max_delay: float, first: "asyncio.Future[ConnectedInfo]") -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        index, attempt = 0, 0
        last_problem = None

        def emit(event: str, *args: Any) -> None:
            if event == "connected" and not first.done():
                first.set_result(args[0])
            self._emit(event, *args)

        while not self._closing:
            url = urls[index % len(urls)]
            was_welcomed = False
            problem = None
            session = None
            refused_upgrade = None
            try:
                ws = await websockets.connect(url, extra_headers=headers, max_size=options.max_message_bytes, compression=None, open_timeout=options.handshake_timeout)
            except websockets.exceptions.InvalidStatusCode as err:
                # The hub checks the token at the upgrade (401, before any frame): reported as its
                # HubError, like a refusal at hello, then redialed.
                refused_upgrade = _upgrade_refusal(url, err.status_code)
                problem = f"{url} refused the worker: {refused_upgrade}"
            except Exception as err:  # noqa: BLE001 - unreachable, bad TLS: all redialed
                problem = f"cannot reach {url}: {err}"
            else:
                session = Session(ws, self.me, self._handler, options, url, True, emit)
                code, reason = await self._serve(session)
                was_welcomed = session.welcomed
                if session.refusal is not None:
                    problem = f"{url} refused the worker: {session.refusal}"
                elif not self._closing:
                    problem = f"the connection to {url} closed ({code}{' ' + reason if reason else ''})"
            if self._closing:
                break
            # A refusal was reported as the hub's HubError when it came.
            refused = session is not None and session.refusal is not None
            if refused_upgrade is not None and problem != last_problem:
                self._emit("error", refused_upgrade)
            elif problem and problem != last_problem and not refused:
                self._emit("error", ConnectionError(f"{problem}; redialing"))
            last_problem = problem
            if was_welcomed:
                attempt = 0
            index += 1  # a lost or failed hub is left for the next URL
            await self._sleep(backoff_delay(attempt, min_delay, max_delay))
            attempt += 1

    # ---- the hub dials ----

    async def listen(self, port: int, *, host: str = "127.0.0.1", secret: Optional[str] = None, concurrency: Optional[int] = None, instance: Optional[str] = None, max_message_bytes: Optional[int] = None, handshake_timeout: float = 10.0) -> str:
        """Serves ``GET /me`` (the description as JSON) and a WebSocket at ``/ws`` for hubs that
        dial this worker (``utils-hub workers add http://HOST:PORT``); each hub connection says
        ``hello`` as with ``connect``. With ``secret``, both need ``Authorization: Bearer
        <secret>`` (the hub's ``HUB_DIAL_SECRET``) and answer 401 otherwise; other paths answer
        404. ``port`` 0 picks a free port. Returns the worker's URL, ``http://HOST:PORT``."""
        options = self._options(concurrency, instance, max_message_bytes, handshake_timeout)
        me_body = json.dumps(self.me).encode()

        async def process_request(path: str, headers: Any) -> Any:
            route = path.split("?", 1)[0]
            if secret is not None and headers.get("Authorization") != f"Bearer {secret}":
                return _http(401, {"error": {"code": "unauthorized", "message": "this worker needs the hub's dial secret"}})
            if route == "/me":
                return (http.HTTPStatus.OK, [("Content-Type", "application/json"), ("Content-Length", str(len(me_body)))], me_body)
            if route == "/ws" and not self._closing:
                return None
            if route == "/ws":
                return _http(503, {"error": {"code": "shutting_down", "message": "this worker is stopping"}})
            return _http(404, {"error": {"code": "not_found", "message": f"no route {route}"}})

        async def on_connection(ws: Any) -> None:
            peer = "%s:%s" % ws.remote_address[:2] if ws.remote_address else "a hub"
            await self._serve(Session(ws, self.me, self._handler, options, peer, False, self._emit))

        server = await websockets.serve(on_connection, host, port, process_request=process_request, max_size=options.max_message_bytes, compression=None)
        self._servers.append(server)
        bound = server.sockets[0].getsockname()
        return f"http://{host}:{bound[1]}"

    # ---- stopping ----

    async def close(self, grace: float = 10.0) -> None:
        """Stops redialing and refuses new hub connections, sends ``drain`` on every connection,
        lets tasks in flight finish and answer for up to ``grace`` seconds, then aborts the rest
        with ``shutdown`` and drops their answers (the hub re-dispatches them), and closes
        sockets and servers. Every call waits for the same end; it never raises."""
        closed = self._closed_future()
        if self._closing:
            await asyncio.shield(closed)
            return
        self._closing = True
        if self._wake is not None:
            self._wake.set()
        try:
            for server in self._servers:
                server.server.close()  # stop accepting; the open connections drain below
            sessions = list(self._sessions)
            if sessions:
                try:
                    await asyncio.wait_for(asyncio.gather(*(s.drain() for s in sessions)), grace)
                except asyncio.TimeoutError:
                    pass
            for s in sessions:
                s.drop_all("shutdown")
            await asyncio.gather(*(s.close(1000, "worker stopping") for s in sessions), return_exceptions=True)
            for server in self._servers:
                server.close()
                await server.wait_closed()
            for t in self._loops:
                t.cancel()
            await asyncio.gather(*self._loops, return_exceptions=True)
        finally:
            if not closed.done():
                closed.set_result(None)

    @property
    def closed(self) -> bool:
        """True once ``close()`` began."""
        return self._closing

    async def wait_closed(self) -> None:
        """Returns once ``close()`` has ended."""
        await asyncio.shield(self._closed_future())

    async def run(self, urls: Union[str, Sequence[str], None] = None, *, listen_port: Optional[int] = None, grace: float = 10.0, **options: Any) -> None:
        """Connects to ``urls`` (or listens on ``listen_port``, or both), closes with a drain on
        SIGTERM or SIGINT, and returns once closed: the body of a worker's ``main``.
        ``options`` go to ``connect`` (``token``, ``concurrency``, ``instance``, ...) and, for
        the ones it takes, to ``listen`` (``host``, ``secret``, ...)."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, lambda: asyncio.ensure_future(self.close(grace)))
        listen_keys = {"host", "secret", "concurrency", "instance", "max_message_bytes", "handshake_timeout"}
        connect_keys = {"token", "concurrency", "instance", "max_message_bytes", "min_delay", "max_delay", "handshake_timeout"}
        unknown = set(options) - listen_keys - connect_keys
        if unknown:
            raise TypeError(f"run: unknown options {sorted(unknown)}")
        if listen_port is not None:
            url = await self.listen(listen_port, **{k: v for k, v in options.items() if k in listen_keys})
            print(f"{self.name} listening on {url}", flush=True)
        if urls is not None:
            info = await self.connect(urls, **{k: v for k, v in options.items() if k in connect_keys})
            print(f"{self.name} connected to {info.peer} as service {info.service_id}", flush=True)
        await self.wait_closed()

    # ---- helpers ----

    def _closed_future(self) -> "asyncio.Future[None]":
        if self._closed is None:
            self._closed = asyncio.get_running_loop().create_future()
        return self._closed

    async def _sleep(self, seconds: float) -> None:
        if self._wake is None:
            self._wake = asyncio.Event()
        try:
            await asyncio.wait_for(self._wake.wait(), seconds)
        except asyncio.TimeoutError:
            pass


def service(name: str, description: str, input: Args, *, output: Optional[Args] = None, concurrency: int = 1, progress_interval: float = 0.05) -> Callable[[Handler], Service]:
    """Decorator: turns ``handler(args, ctx)`` into a Service.

    >>> @service(name="shout", description="Upper-cases a text", input=[Arg("text", "str")])
    ... async def shout(args, ctx):
    ...     return {"text": args["text"].upper()}
    """

    def wrap(fn: Handler) -> Service:
        return Service(name, description, input, fn, output=output, concurrency=concurrency, progress_interval=progress_interval)

    return wrap


def _int(option: str, value: Any, low: int, high: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise ValueError(f"{option}: must be a whole number from {low} to {high}, got {value!r}")
    return value


def _ws_url(url: str) -> str:
    if url.startswith("http://"):
        return "ws://" + url[len("http://"):]
    if url.startswith("https://"):
        return "wss://" + url[len("https://"):]
    if not url.startswith(("ws://", "wss://")):
        raise ValueError(f"connect: must be a ws:// or wss:// URL (the hub's /worker), got {url!r}")
    return url


def _http(status: int, body: Dict[str, Any]) -> Any:
    data = json.dumps(body).encode()
    return (http.HTTPStatus(status), [("Content-Type", "application/json"), ("Content-Length", str(len(data)))], data)


def _upgrade_refusal(url: str, status: int) -> HubError:
    """The hub's answer to a refused upgrade, as the HubError the handshake would have given."""
    if status == 401:
        return HubError("unauthorized", f"the hub at {url} refused the worker token (401)")
    if status == 403:
        return HubError("forbidden", f"the hub at {url} refused the worker (403)")
    return HubError("unavailable" if status == 503 else "internal", f"the hub at {url} refused the upgrade with HTTP {status}")
