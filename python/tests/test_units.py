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


def test_a_broken_message_from_the_hub_is_reported_and_the_connection_goes_on():
    import asyncio

    import websockets

    from utils_hub_worker import Service

    async def main():
        answers = []

        async def fake_hub(ws, path=None):
            hello = json.loads(await ws.recv())
            answers.append(hello)
            await ws.send(json.dumps({"type": "welcome", "service_id": 7, "connection_id": "c", "heartbeat_ms": 15000}))
            await ws.send(json.dumps({"type": "task", "task_id": "broken", "args": {}}))  # no timeout_ms, no attempt
            await ws.send("not json")
            await ws.send(json.dumps({"type": "something_new", "x": 1}))  # ignored
            await ws.send(json.dumps({"type": "task", "task_id": "good", "args": {}, "timeout_ms": 5000, "attempt": 1}))
            answers.append(json.loads(await ws.recv()))
            await ws.close()

        server = await websockets.serve(fake_hub, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        svc = Service("fake", "d", [], lambda args, ctx: "fine")
        errors = []
        svc.on("error", errors.append)
        await svc.connect(f"ws://127.0.0.1:{port}/worker", max_message_bytes=2048)
        for _ in range(100):
            if len(answers) == 2:
                break
            await asyncio.sleep(0.05)
        await svc.close(grace=0.1)
        server.close()
        await server.wait_closed()
        return answers, errors

    answers, errors = asyncio.run(main())
    hello, result = answers
    assert hello["type"] == "hello" and hello["protocol"] == 1 and hello["max_message_bytes"] == 2048
    assert hello["me"]["description"] == "d"
    assert result == {"type": "result", "task_id": "good", "result": "fine"}
    assert "broken 'task'" in str(errors[0]) and "broken message" in str(errors[1])
    # Then only the fake hub's close (reported as the redial it leads to).
    assert all(isinstance(e, ConnectionError) for e in errors[2:])
