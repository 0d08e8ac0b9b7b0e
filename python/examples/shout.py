"""An example worker: upper-cases a text, reporting progress.

    python3 shout.py --hub ws://127.0.0.1:8080/worker [--token T]
    python3 shout.py --listen 9001 [--secret S]      # then: utils-hub workers add http://127.0.0.1:9001
"""
import argparse
import asyncio
import logging

from utils_hub_worker import Arg, ServiceError, service


@service(
    name="shout",
    description="Upper-cases a text",
    input=[
        Arg("text", "str", "What to shout", min=1),
        Arg("times", "int", "How many times", default=1, min=1, max=10),
        Arg("delay", "float", "Seconds to take (to watch the progress)", default=0, min=0, max=60),
    ],
)
async def shout(args, ctx):
    if "secret" in args["text"]:
        raise ServiceError("refused", "I will not shout that")
    steps = 10
    for i in range(steps):
        ctx.progress(i / steps, "shouting")
        await asyncio.sleep(args["delay"] / steps)
    return {"text": " ".join([args["text"].upper()] * args["times"])}


def main() -> None:
    p = argparse.ArgumentParser(description="The shout worker")
    p.add_argument("--hub", action="append", help="the hub's /worker URL (repeat for several hubs)")
    p.add_argument("--token", help="worker token")
    p.add_argument("--listen", type=int, help="port to listen on, for a hub that dials")
    p.add_argument("--secret", help="the hub's HUB_DIAL_SECRET, with --listen")
    o = p.parse_args()
    if not o.hub and o.listen is None:
        p.error("give --hub URL or --listen PORT")
    logging.basicConfig(level=logging.WARNING)
    options = {"token": o.token} if o.token else {}
    if o.secret:
        options["secret"] = o.secret
    asyncio.run(shout.run(o.hub, listen_port=o.listen, **options))


if __name__ == "__main__":
    main()
