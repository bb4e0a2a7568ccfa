"""A member that prints what each rebalance gives it and takes from it.

Usage: python3 solution.py BOOTSTRAP GROUP ASSIGNOR [STATIC_ID]
ASSIGNOR is range, roundrobin or cooperative-sticky.
"""
import sys

from confluent_kafka import Consumer

BOOTSTRAP = sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1:9092"
GROUP = sys.argv[2] if len(sys.argv) > 2 else "sticky-readers"
ASSIGNOR = sys.argv[3] if len(sys.argv) > 3 else "range"
STATIC_ID = sys.argv[4] if len(sys.argv) > 4 else None


def show(what):
    def callback(consumer, partitions):
        numbers = ", ".join(str(p.partition) for p in partitions) or "nothing"
        print(f"{what}: {numbers}", flush=True)
    return callback


def main():
    config = {
        "bootstrap.servers": BOOTSTRAP,
        "group.id": GROUP,
        "client.id": "lab09-python",
        "auto.offset.reset": "earliest",
        "session.timeout.ms": 10000,
        # Eager (range, roundrobin) or cooperative (cooperative-sticky): every member of a
        # group must agree on the protocol.
        "partition.assignment.strategy": ASSIGNOR,
    }
    if STATIC_ID:
        # A static member keeps its place for session.timeout.ms after it goes away.
        config["group.instance.id"] = STATIC_ID
    consumer = Consumer(config)
    # Under cooperative-sticky, confluent-kafka's callbacks get only what moves, and it applies
    # them incrementally by itself when the callbacks do not assign.
    consumer.subscribe(["events"], on_assign=show("assigned"), on_revoke=show("revoked"))
    try:
        while True:
            consumer.poll(1.0)
    except KeyboardInterrupt:
        pass
    finally:
        consumer.close()


if __name__ == "__main__":
    main()
