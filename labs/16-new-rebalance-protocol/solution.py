"""A member of a consumer-protocol group (KIP-848) that prints every partition handed over.

Usage: python3 solution.py BOOTSTRAP [GROUP] [ASSIGNOR]
"""
import sys

from confluent_kafka import Consumer

BOOTSTRAP = sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1:9092"
GROUP = sys.argv[2] if len(sys.argv) > 2 else "kip848-group"
ASSIGNOR = sys.argv[3] if len(sys.argv) > 3 else "uniform"


def show(what):
    def callback(consumer, partitions):
        numbers = ", ".join(f"P{p.partition}" for p in partitions) or "nothing"
        print(f"{what}: {numbers} (member {consumer.memberid()})", flush=True)
    return callback


def main():
    consumer = Consumer({
        "bootstrap.servers": BOOTSTRAP,
        "group.id": GROUP,
        "client.id": "lab16-python",
        "auto.offset.reset": "earliest",
        "group.protocol": "consumer",
        "group.remote.assignor": ASSIGNOR,
    })
    # Under the consumer protocol every rebalance is incremental: on_revoke gets only what
    # moves away, on_assign only what arrives, and the rest keeps being read throughout.
    consumer.subscribe(["payments"], on_assign=show("assigned"), on_revoke=show("revoked"), on_lost=show("lost"))
    try:
        while True:
            message = consumer.poll(1.0)
            if message is not None and message.error() is None:
                print(f"P{message.partition()} @{message.offset()}: {message.value()!r}", flush=True)
    except KeyboardInterrupt:
        pass
    finally:
        consumer.close()


if __name__ == "__main__":
    main()
