"""A member of `dashboards` that reports its own lag.

Usage: python3 starter.py BOOTSTRAP
"""
import sys
import time

from confluent_kafka import Consumer

BOOTSTRAP = sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1:9092"


def report_lag(consumer):
    # TODO: for each assigned partition, print the high watermark
    # (consumer.get_watermark_offsets) minus the committed offset (consumer.committed).
    pass


def main():
    consumer = Consumer({
        "bootstrap.servers": BOOTSTRAP,
        "group.id": "dashboards",
        "client.id": "lab12-python",
        "auto.offset.reset": "earliest",
        "session.timeout.ms": 10000,
    })
    consumer.subscribe(["page-views"])
    last_report = time.monotonic()
    try:
        while True:
            record = consumer.poll(0.1)
            if record is not None and not record.error():
                time.sleep(0.1)  # 100 ms of work per message
            if time.monotonic() - last_report >= 5:
                report_lag(consumer)
                last_report = time.monotonic()
    except KeyboardInterrupt:
        pass
    finally:
        consumer.close()


if __name__ == "__main__":
    main()
