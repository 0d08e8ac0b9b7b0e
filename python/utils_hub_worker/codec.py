"""The attachment codec (docs/protocol.md, "Attachments"): bytes travel as binary frames that
follow their message, referred to inside it as ``{"$attachment": k, "mime"?, "name"?}``."""
import json
from typing import Any, List, Optional, Tuple

#: Most binary frames one message may carry.
MAX_ATTACHMENTS = 16
#: The mime type given to bytes that come without one.
OCTET_STREAM = "application/octet-stream"

BYTES = (bytes, bytearray, memoryview)


class EncodeError(ValueError):
    """A message that cannot be sent: more than 16 attachments, or a value JSON cannot write."""


def encode(message: dict) -> Tuple[str, List[bytes]]:
    """Encodes a message: every dict whose ``data`` is bytes (``{"mime", "name"?, "data"}``)
    becomes ``{"$attachment": k, "mime", "name"}`` and bare bytes become ``{"$attachment": k}``,
    k counting from 0 in document order; ``"attachments": n`` is set when n > 0. Returns the text
    frame and the binary frames. Raises EncodeError."""
    binaries: List[bytes] = []

    def take(b: Any) -> int:
        if len(binaries) >= MAX_ATTACHMENTS:
            raise EncodeError(f"a message carries at most {MAX_ATTACHMENTS} attachments")
        binaries.append(bytes(b))
        return len(binaries) - 1

    def walk(v: Any, depth: int) -> Any:
        if isinstance(v, BYTES):
            return {"$attachment": take(v)}
        if isinstance(v, dict):
            if depth > 1 and isinstance(v.get("data"), BYTES):
                ref = {"$attachment": take(v["data"])}
                for k, x in v.items():
                    if k != "data":
                        ref[k] = walk(x, depth + 1)
                return ref
            return {k: walk(x, depth + 1) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return [walk(x, depth + 1) for x in v]
        return v

    out = walk(message, 1)
    out.pop("attachments", None)
    if binaries:
        out["attachments"] = len(binaries)
    try:
        text = json.dumps(out, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as err:
        raise EncodeError(f"the message cannot be written as JSON: {err}") from err
    return text, binaries


def decode(message: Any, binaries: List[bytes]) -> Any:
    """Replaces every ``{"$attachment": k, ...}`` by ``{"mime", "name"?, "data": bytes}`` (other
    members kept). Raises ValueError for an index outside the frames received."""

    def walk(v: Any) -> Any:
        if isinstance(v, dict):
            k = v.get("$attachment")
            if isinstance(k, int) and not isinstance(k, bool):
                if not 0 <= k < len(binaries):
                    raise ValueError(f"$attachment {k} is outside the {len(binaries)} frames received")
                out = {key: walk(x) for key, x in v.items() if key != "$attachment"}
                out.setdefault("mime", OCTET_STREAM)
                out["data"] = binaries[k]
                return out
            return {key: walk(x) for key, x in v.items()}
        if isinstance(v, list):
            return [walk(x) for x in v]
        return v

    return walk(message)


class FrameReader:
    """Turns frames into messages: a text frame announcing ``attachments: n`` waits for its n
    binary frames. ``push`` returns the complete message, or None while frames are owed; broken
    input raises ValueError (the frames of that message are dropped)."""

    def __init__(self, max_attachment_bytes: Optional[int] = None):
        self._pending: Optional[dict] = None
        self._owed = 0
        self._frames: List[bytes] = []
        self._max = max_attachment_bytes
        self._bytes = 0

    def push(self, frame: Any) -> Optional[dict]:
        if isinstance(frame, str):
            dropped = self._pending is not None
            self._pending = None
            msg = json.loads(frame)
            if not isinstance(msg, dict):
                raise ValueError("a message must be a JSON object")
            n = msg.get("attachments")
            if n is None:
                if dropped:
                    raise ValueError("a text frame came while binary frames were owed; the owed message was dropped")
                return msg
            if not isinstance(n, int) or isinstance(n, bool) or not 1 <= n <= MAX_ATTACHMENTS:
                raise ValueError(f"attachments must be an integer from 1 to {MAX_ATTACHMENTS}")
            self._pending, self._owed, self._frames, self._bytes = msg, n, [], 0
            return None
        if self._pending is None:
            raise ValueError("a binary frame nobody announced")
        self._frames.append(bytes(frame))
        self._bytes += len(frame)
        if self._max is not None and self._bytes > self._max:
            self._pending = None
            raise ValueError(f"the attachments of one message exceed {self._max} bytes")
        if len(self._frames) < self._owed:
            return None
        msg, frames = self._pending, self._frames
        self._pending, self._frames = None, []
        return decode(msg, frames)
