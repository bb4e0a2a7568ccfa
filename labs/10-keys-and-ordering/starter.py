"""A consumer of `user-actions` that checks the order in which messages arrive.

Usage: python3 starter.py BOOTSTRAP
Each value is `click #N by KEY`, N counting up in the order grouplab produced them.
"""
import sys

from confluent_kafka import Consumer

BOOTSTRAP = sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1:9092"


def number(record):
    return int(record.value().decode().split("#")[1].split()[0])


def main():
    consumer = Consumer({
        "bootstrap.servers": BOOTSTRAP,
        "group.id": "action-processors",
        "client.id": "lab10-python",
        "auto.offset.reset": "earliest",
        "session.timeout.ms": 10000,
    })
    consumer.subscribe(["user-actions"])
    # TODO: remember the highest number seen per key, and overall.
    try:
        while True:
            record = consumer.poll(1.0)
            if record is None or record.error():
                continue
            key = record.key().decode() if record.key() else None
            # TODO: say when a message arrives after a later one with the same key (never),
            # and when it arrives after a later one with another key (often).
            print(f"P{record.partition()} #{number(record)} key {key}", flush=True)
    except KeyboardInterrupt:
        pass
    finally:
        consumer.close()


if __name__ == "__main__":
    main()
