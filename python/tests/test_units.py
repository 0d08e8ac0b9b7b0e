"""Pure parts of the SDK: the redial backoff, the attachment codec, the frame reader."""
import json

import pytest

from utils_hub_worker import backoff_delay
from utils_hub_worker.codec import EncodeError, FrameReader, decode, encode


def test_backoff_doubles_from_min_to_max_with_jitter_between_half_and_all():
    for attempt, ceiling in [(0, 0.5), (1, 1.0), (2, 2.0), (6, 30.0), (60, 30.0)]:
        delays = [backoff_delay(attempt, 0.5, 30.0) for _ in range(200)]
        assert all(ceiling / 2 <= d <= ceiling for d in delays), (attempt, min(delays), max(delays))
        assert max(delays) - min(delays) > ceiling / 10  # jittered, not fixed


def test_encode_turns_bytes_into_refs_and_frames_in_document_order():
    text, frames = encode({"type": "result", "task_id": "t", "result": {"a": {"mime": "image/png", "data": b"A", "name": "a.png"}, "b": [b"B"]}})
    msg = json.loads(text)
    assert msg["attachments"] == 2
    assert msg["result"] == {"a": {"$attachment": 0, "mime": "image/png", "name": "a.png"}, "b": [{"$attachment": 1}]}
    assert frames == [b"A", b"B"]
    assert decode(msg, frames)["result"]["a"] == {"mime": "image/png", "name": "a.png", "data": b"A"}


def test_encode_refuses_more_than_16_attachments_and_non_json():
    with pytest.raises(EncodeError):
        encode({"type": "result", "task_id": "t", "result": [b"x"] * 17})
    with pytest.raises(EncodeError):
        encode({"type": "result", "task_id": "t", "result": float("nan")})
    with pytest.raises(EncodeError):
        encode({"type": "result", "task_id": "t", "result": object()})


def test_frame_reader_waits_for_announced_frames_and_refuses_strays():
    r = FrameReader(max_attachment_bytes=10)
    assert r.push('{"type":"task","task_id":"t","args":{"f":{"$attachment":0}},"attachments":1}') is None
    msg = r.push(b"12345")
    assert msg["args"]["f"]["data"] == b"12345" and msg["args"]["f"]["mime"] == "application/octet-stream"
    with pytest.raises(ValueError, match="nobody announced"):
        r.push(b"stray")
    r.push('{"type":"task","attachments":1}')
    with pytest.raises(ValueError, match="exceed 10 bytes"):
        r.push(b"x" * 11)
    with pytest.raises(ValueError):
        r.push("[1, 2]")
