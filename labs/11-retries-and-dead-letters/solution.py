"""A consumer of `invoices` that retries a few times, then parks what still fails.

Usage: python3 solution.py BOOTSTRAP
"""
import sys
import time

from confluent_kafka import Consumer, Producer

BOOTSTRAP = sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1:9092"
RETRIES = 3
DEAD_LETTERS = "invoices.dlq"


def send_invoice(record):
    text = record.value().decode()
    if "poison" in text:
        raise ValueError(f"cannot process {text!r}")
    print(f"sent invoice for P{record.partition()}@{record.offset()}", flush=True)


def park(producer, record, error):
    producer.produce(
        DEAD_LETTERS,
        key=record.key(),
        value=record.value(),
        headers={
            "origin": f"{record.topic()}/{record.partition()}/{record.offset()}",
            "error": str(error),
        },
    )
    # Wait until the broker has it: only then may the original be committed.
    producer.flush(10)
    print(f"parked P{record.partition()}@{record.offset()} in {DEAD_LETTERS}", flush=True)


def main():
    consumer = Consumer({
        "bootstrap.servers": BOOTSTRAP,
        "group.id": "invoice-senders",
        "client.id": "lab11-python",
        "auto.offset.reset": "earliest",
        "session.timeout.ms": 10000,
        "enable.auto.commit": False,
    })
    producer = Producer({"bootstrap.servers": BOOTSTRAP})
    consumer.subscribe(["invoices"])
    try:
        while True:
            record = consumer.poll(1.0)
            if record is None or record.error():
                continue
            for attempt in range(1, RETRIES + 2):
                try:
                    send_invoice(record)
                    break
                except ValueError as error:
                    print(f"attempt {attempt} failed: {error}", flush=True)
                    if attempt > RETRIES:
                        park(producer, record, error)
                        break
                    time.sleep(0.5)
            consumer.commit(message=record, asynchronous=False)
    except KeyboardInterrupt:
        pass
    finally:
        consumer.close()


if __name__ == "__main__":
    main()
