"""A consumer of `thumbnails` whose processing is slow: 4 s per message.

Usage: python3 starter.py BOOTSTRAP
As written it processes inside the poll loop and is thrown out of its group. Fix it with a worker thread.
"""
import sys
import time

from confluent_kafka import Consumer

BOOTSTRAP = sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1:9092"


def resize(record):
    time.sleep(4)
    print(f"resized partition {record.partition()} offset {record.offset()}", flush=True)


def main():
    consumer = Consumer({
        "bootstrap.servers": BOOTSTRAP,
        "group.id": "resizers",
        "client.id": "lab08-python",
        "auto.offset.reset": "earliest",
        "session.timeout.ms": 10000,
        # The application must poll at least this often, or the client leaves the group.
        "max.poll.interval.ms": 10000,
    })
    consumer.subscribe(["thumbnails"])
    try:
        while True:
            # TODO: this loop does not poll again until the whole batch is resized (20 s).
            # Hand the records to a worker thread through a bounded queue.Queue instead,
            # and pause the assignment while the queue is full.
            for record in consumer.consume(num_messages=5, timeout=1.0):
                if record.error():
                    print("error:", record.error(), flush=True)
                    continue
                resize(record)
    except KeyboardInterrupt:
        pass
    finally:
        consumer.close()


if __name__ == "__main__":
    main()
