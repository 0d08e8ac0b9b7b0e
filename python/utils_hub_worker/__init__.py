"""utils-hub worker SDK for Python: define a service, then connect it to a hub (``connect``) or
let the hub dial it (``listen``). The wire contract is docs/protocol.md of utils-hub.

    from utils_hub_worker import Arg, service

    @service(name="shout", description="Upper-cases a text", input=[Arg("text", "str", "What to shout")])
    async def shout(args, ctx):
        ctx.progress(0.5, "shouting")
        return {"text": args["text"].upper()}

    asyncio.run(shout.run("ws://127.0.0.1:8080/worker"))
"""
from .codec import MAX_ATTACHMENTS, EncodeError
from .description import ARG_TYPES, MEDIA_TYPES, Arg
from .errors import HubError, ServiceError
from .service import DEFAULT_MAX_MESSAGE_BYTES, Service, backoff_delay, service
from .session import PROTOCOL_VERSION, ConnectedInfo
from .task import ABORT_MESSAGES, TaskContext


def media(data: bytes, mime: str, name: str = None) -> dict:
    """A media value for a result or progress data: ``{"mime", "name"?, "data": bytes}``; its
    bytes travel as a binary frame."""
    out = {"mime": mime, "data": bytes(data)}
    if name is not None:
        out["name"] = name
    return out


__all__ = [
    "ABORT_MESSAGES",
    "ARG_TYPES",
    "Arg",
    "ConnectedInfo",
    "DEFAULT_MAX_MESSAGE_BYTES",
    "EncodeError",
    "HubError",
    "MAX_ATTACHMENTS",
    "MEDIA_TYPES",
    "PROTOCOL_VERSION",
    "Service",
    "ServiceError",
    "TaskContext",
    "backoff_delay",
    "media",
    "service",
]
__version__ = "0.1.0"
