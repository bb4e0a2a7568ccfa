"""A consumer in the group `order-workers` of the Redis stream `orders`.

Usage: python3 starter.py REDIS_URL
It reads entries nobody in the group was handed yet, and works on each. As written, it never
acknowledges them, so they stay on the group's pending entries list under its name.
"""
import os
import sys
import time

import redis

URL = sys.argv[1] if len(sys.argv) > 1 else "redis://127.0.0.1:6379/"
STREAM = "orders"
GROUP = "order-workers"
# One name per process: two processes sharing a name would share one pending list.
CONSUMER = f"learner-{os.getpid()}"


def handle(entry_id, fields):
    print(f"{CONSUMER} handles {entry_id}: {fields.get('value')}", flush=True)
    time.sleep(0.2)  # the work


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
            # ">" asks for entries nobody in the group has been handed yet.
            reply = r.xreadgroup(GROUP, CONSUMER, {STREAM: ">"}, count=10, block=2000)
            for _stream, entries in reply or []:
                for entry_id, fields in entries:
                    handle(entry_id, fields)
                    # TODO: acknowledge the entry (XACK), so it leaves the pending entries list.
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
