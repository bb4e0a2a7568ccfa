"""A member of `sensor-readers` that says which partitions it owns, or that it owns none.

Usage: python3 solution.py BOOTSTRAP
"""
import sys

from confluent_kafka import Consumer

BOOTSTRAP = sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1:9092"


def show_assignment(consumer, partitions):
    numbers = ", ".join(str(p.partition) for p in partitions) or "none (idle)"
    print(f"assigned: {numbers}", flush=True)


def main():
    consumer = Consumer({
        "bootstrap.servers": BOOTSTRAP,
        "group.id": "sensor-readers",
        "client.id": "lab06-python",
        "auto.offset.reset": "earliest",
        "session.timeout.ms": 10000,
        # Added partitions are seen at the next metadata refresh: every 3 s, not every 5 minutes.
        "topic.metadata.refresh.interval.ms": 3000,
    })
    consumer.subscribe(["sensor-readings"], on_assign=show_assignment)
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
