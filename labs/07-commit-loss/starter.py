"""A consumer of `payments` that processes slowly, in batches.

Usage: python3 starter.py BOOTSTRAP
Kill it with `kill -9` in the middle of a batch, start it again, and compare what it prints.
"""
import sys
import time

from confluent_kafka import Consumer

BOOTSTRAP = sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1:9092"


def process(record):
    time.sleep(0.3)
    print(f"processed offset {record.offset()}: {record.value().decode()}", flush=True)


def main():
    consumer = Consumer({
        "bootstrap.servers": BOOTSTRAP,
        "group.id": "payments-mine",
        "client.id": "lab07-python",
        "auto.offset.reset": "earliest",
        "session.timeout.ms": 10000,
        # TODO: auto-commit commits what poll returned, processed or not.
        # Turn it off, and commit after processing instead.
        "enable.auto.commit": True,
    })
    consumer.subscribe(["payments"])
    try:
        while True:
            batch = consumer.consume(num_messages=10, timeout=1.0)
            for record in batch:
                if not record.error():
                    process(record)
            # TODO: commit here, once the whole batch is processed.
    except KeyboardInterrupt:
        pass
    finally:
        consumer.close()


if __name__ == "__main__":
    main()
