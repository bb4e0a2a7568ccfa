"""A member of `sensor-readers` that says which partitions it owns, or that it owns none.

Usage: python3 starter.py BOOTSTRAP
"""
import sys

from confluent_kafka import Consumer

BOOTSTRAP = sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1:9092"


def main():
    consumer = Consumer({
        "bootstrap.servers": BOOTSTRAP,
        "group.id": "sensor-readers",
        "client.id": "lab06-python",
        "auto.offset.reset": "earliest",
        "session.timeout.ms": 10000,
        # TODO: new partitions are noticed only when the client refreshes the topic's
        # metadata, every 5 minutes by default. Make it every 3 seconds.
    })
    # TODO: print the partitions each rebalance assigns, and "none" when there are none.
    consumer.subscribe(["sensor-readings"])
    try:
        while True:
            record = consumer.poll(1.0)
            if record is None or record.error():
                continue
            print(f"partition {record.partition()}: {record.value().decode()}", flush=True)
    except KeyboardInterrupt:
        pass
    finally:
        consumer.close()


if __name__ == "__main__":
    main()
