"""A consumer of `orders` in the group named on the command line, showing where each message comes from.

Usage: python3 solution.py BOOTSTRAP GROUP
"""
import sys

from confluent_kafka import Consumer

BOOTSTRAP = sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1:9092"
GROUP = sys.argv[2] if len(sys.argv) > 2 else "billing"


def show_assignment(consumer, partitions):
    numbers = ", ".join(str(p.partition) for p in partitions) or "none"
    print(f"[{GROUP}] assigned partitions {numbers}", flush=True)


def main():
    consumer = Consumer({
        "bootstrap.servers": BOOTSTRAP,
        # Every group keeps its own offsets, so each group reads every message.
        "group.id": GROUP,
        # The name the lab page shows for this member.
        "client.id": f"lab05-{GROUP}",
        "auto.offset.reset": "earliest",
        "session.timeout.ms": 10000,
    })
    consumer.subscribe(["orders"], on_assign=show_assignment)
    try:
        while True:
            record = consumer.poll(1.0)
            if record is None or record.error():
                continue
            print(f"[{GROUP}] partition {record.partition()} offset {record.offset()}: "
                  f"{record.value().decode()}", flush=True)
    except KeyboardInterrupt:
        pass
    finally:
        # close() commits what was read and leaves the group at once.
        consumer.close()


if __name__ == "__main__":
    main()
