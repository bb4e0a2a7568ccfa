"""A consumer of `payments` that commits only what it has processed.

Usage: python3 solution.py BOOTSTRAP
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
        # The committed offset must never run ahead of the work.
        "enable.auto.commit": False,
    })
    consumer.subscribe(["payments"])
    try:
        while True:
            batch = consumer.consume(num_messages=10, timeout=1.0)
            done = [record for record in batch if not record.error()]
            for record in done:
                process(record)
            if done:
                # Synchronous, so that a commit is known to have landed before the next batch.
                consumer.commit(asynchronous=False)
    except KeyboardInterrupt:
        pass
    finally:
        consumer.close()


if __name__ == "__main__":
    main()
