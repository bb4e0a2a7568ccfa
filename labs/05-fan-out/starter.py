"""A consumer of `orders` in the group named on the command line.

Usage: python3 starter.py BOOTSTRAP GROUP
"""
import sys

from confluent_kafka import Consumer

BOOTSTRAP = sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1:9092"
GROUP = sys.argv[2] if len(sys.argv) > 2 else "billing"


def main():
    consumer = Consumer({
        "bootstrap.servers": BOOTSTRAP,
        # The group given on the command line: each group reads every message.
        "group.id": GROUP,
        # The name the lab page shows for this member.
        "client.id": f"lab05-{GROUP}",
        "auto.offset.reset": "earliest",
        "session.timeout.ms": 10000,
    })
    consumer.subscribe(["orders"])
    try:
        while True:
            record = consumer.poll(1.0)
            if record is None or record.error():
                continue
            # TODO: print the partition and offset of each message next to its value, and
            # (with an on_assign callback) which partitions this member was given.
            print(record.value().decode(), flush=True)
    except KeyboardInterrupt:
        pass
    finally:
        consumer.close()


if __name__ == "__main__":
    main()
