"""A consumer of `invoices` that fails on poison messages.

Usage: python3 starter.py BOOTSTRAP
As written it retries a poison message for ever, and its partition is stuck behind it.
"""
import sys
import time

from confluent_kafka import Consumer

BOOTSTRAP = sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1:9092"


def send_invoice(record):
    text = record.value().decode()
    if "poison" in text:
        raise ValueError(f"cannot process {text!r}")
    print(f"sent invoice for P{record.partition()}@{record.offset()}", flush=True)


def main():
    consumer = Consumer({
        "bootstrap.servers": BOOTSTRAP,
        "group.id": "invoice-senders",
        "client.id": "lab11-python",
        "auto.offset.reset": "earliest",
        "session.timeout.ms": 10000,
        "enable.auto.commit": False,
    })
    consumer.subscribe(["invoices"])
    try:
        while True:
            record = consumer.poll(1.0)
            if record is None or record.error():
                continue
            while True:
                try:
                    send_invoice(record)
                    break
                except ValueError as error:
                    # TODO: give up after 3 retries: produce the record to `invoices.dlq`
                    # (with headers saying where it came from), then move on.
                    print(f"failed: {error}; retrying", flush=True)
                    time.sleep(0.5)
            consumer.commit(message=record, asynchronous=False)
    except KeyboardInterrupt:
        pass
    finally:
        consumer.close()


if __name__ == "__main__":
    main()
