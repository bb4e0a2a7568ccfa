"""A member that prints what each rebalance gives it and takes from it.

Usage: python3 starter.py BOOTSTRAP GROUP ASSIGNOR [STATIC_ID]
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
        # TODO: choose the assignor given on the command line
        # (the `partition.assignment.strategy` setting).
    }
    # TODO: with a STATIC_ID, set `group.instance.id` to make the member static.
    consumer = Consumer(config)
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
