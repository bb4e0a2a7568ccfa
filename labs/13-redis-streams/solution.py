"""A consumer in the group `order-workers` of the Redis stream `orders` that acknowledges what
it finished, claims what crashed consumers left pending, and moves poison entries aside.

Usage: python3 solution.py REDIS_URL
"""
import os
import sys
import time

import redis

URL = sys.argv[1] if len(sys.argv) > 1 else "redis://127.0.0.1:6379/"
STREAM = "orders"
GROUP = "order-workers"
DEAD = "orders.dead"
CONSUMER = f"learner-{os.getpid()}"
CLAIM_AFTER_MS = 5000
MAX_DELIVERIES = 4


def handle(entry_id, fields):
    value = fields.get("value", "")
    if "poison" in value:
        raise ValueError(f"cannot handle {value!r}")
    print(f"{CONSUMER} handles {entry_id}: {value}", flush=True)
    time.sleep(0.2)  # the work


def work(r, entries, deliveries):
    for entry_id, fields in entries:
        try:
            handle(entry_id, fields)
        except ValueError as error:
            count = deliveries.get(entry_id, 1)
            print(f"{entry_id} failed (delivery {count}): {error}", flush=True)
            if count < MAX_DELIVERIES:
                continue  # left pending: a later claim delivers it again
            r.xadd(DEAD, {**fields, "origin": f"{STREAM}/{entry_id}", "deliveries": count})
        r.xack(STREAM, GROUP, entry_id)


def main():
    r = redis.Redis.from_url(URL, decode_responses=True)
    r.client_setname(CONSUMER)
    try:
        r.xgroup_create(STREAM, GROUP, id="0", mkstream=True)
    except redis.ResponseError as error:
        if "BUSYGROUP" not in str(error):
            raise
    try:
        while True:
            # Take over what anyone (a crashed consumer, or this one) left pending too long.
            _next, claimed, _deleted = r.xautoclaim(
                STREAM, GROUP, CONSUMER, min_idle_time=CLAIM_AFTER_MS, start_id="0-0", count=10
            )
            if claimed:
                pending = r.xpending_range(
                    STREAM, GROUP, min=claimed[0][0], max=claimed[-1][0],
                    count=len(claimed), consumername=CONSUMER,
                )
                deliveries = {p["message_id"]: p["times_delivered"] for p in pending}
                work(r, claimed, deliveries)
            reply = r.xreadgroup(GROUP, CONSUMER, {STREAM: ">"}, count=10, block=2000)
            for _stream, entries in reply or []:
                work(r, entries, {})
    except KeyboardInterrupt:
        pass
    finally:
        # Leave the group only with nothing pending: deleting a consumer drops its pending entries.
        mine = r.xpending_range(STREAM, GROUP, min="-", max="+", count=1, consumername=CONSUMER)
        if not mine:
            r.xgroup_delconsumer(STREAM, GROUP, CONSUMER)


if __name__ == "__main__":
    main()
