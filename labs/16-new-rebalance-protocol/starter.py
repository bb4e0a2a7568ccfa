"""A member of a consumer-protocol group (KIP-848): the broker assigns its partitions.

Usage: python3 starter.py BOOTSTRAP [GROUP] [ASSIGNOR]
Needs confluent-kafka 2.12 or later (librdkafka with the consumer protocol).
"""
import sys

from confluent_kafka import Consumer

BOOTSTRAP = sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1:9092"
GROUP = sys.argv[2] if len(sys.argv) > 2 else "kip848-group"
ASSIGNOR = sys.argv[3] if len(sys.argv) > 3 else "uniform"


def main():
    config = {
        "bootstrap.servers": BOOTSTRAP,
        "group.id": GROUP,
        "client.id": "lab16-python",
        "auto.offset.reset": "earliest",
        # The new protocol: no JoinGroup, no SyncGroup, no leader. The broker computes the
        # assignment and this client reconciles towards it, one heartbeat at a time.
        "group.protocol": "consumer",
        # Under this protocol the broker owns the session timeout and the heartbeat interval:
        # setting `session.timeout.ms` or `partition.assignment.strategy` here is an error.
        # TODO: ask the broker for the assignor given on the command line
        # (the `group.remote.assignor` setting: uniform or range).
    }
    consumer = Consumer(config)
    # TODO: pass on_assign and on_revoke callbacks that print the partitions each one
    # receives, to see that a rebalance only ever hands over the partitions that move.
    consumer.subscribe(["payments"])
    try:
        while True:
            message = consumer.poll(1.0)
            if message is not None and message.error() is None:
                print(f"P{message.partition()} @{message.offset()}: {message.value()!r}", flush=True)
    except KeyboardInterrupt:
        pass
    finally:
        # close() sends a heartbeat with epoch -1: the member leaves at once.
        consumer.close()


if __name__ == "__main__":
    main()
