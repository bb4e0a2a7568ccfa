"""A reader of the Redis stream `orders` that only looks like a group member.

Usage: python3 xread_reader.py REDIS_URL
It reads with plain XREAD, which knows no groups: every copy of it gets every entry, nothing is
pending, and there is nothing to acknowledge. Compare it with starter.py.
"""
import os
import sys

import redis

URL = sys.argv[1] if len(sys.argv) > 1 else "redis://127.0.0.1:6379/"
STREAM = "orders"
GROUP = "order-workers"  # accepted, and never used: that is the bug


def main():
    r = redis.Redis.from_url(URL, decode_responses=True)
    name = f"xread-{os.getpid()}"
    r.client_setname(name)
    last = "$"  # only entries added from now on
    try:
        while True:
            reply = r.xread({STREAM: last}, count=10, block=2000)
            for _stream, entries in reply or []:
                for entry_id, fields in entries:
                    print(f"{name} got {entry_id}: {fields.get('value')}", flush=True)
                    last = entry_id
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
