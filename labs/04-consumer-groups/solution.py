"""A consumer for the click-processors group that shows every rebalance."""
import sys

from confluent_kafka import Consumer, KafkaError

BOOTSTRAP = sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1:9092"


def show(action):
    def callback(consumer, partitions):
        numbers = ", ".join(str(p.partition) for p in partitions) or "none"
        print(f"{action}: partitions {numbers}", flush=True)
    return callback


def run(group_id, topics):
    consumer = Consumer({
        "bootstrap.servers": BOOTSTRAP,
        "group.id": group_id,
        # The name the lab page shows for this member.
        "client.id": "lab04-python",
        "auto.offset.reset": "earliest",
        # Same as the instances in the page, so a crash is noticed after 10 seconds.
        "session.timeout.ms": 10000,
        "heartbeat.interval.ms": 1000,
    })
    consumer.subscribe(topics, on_assign=show("assigned"), on_revoke=show("revoked"))
    try:
        while True:
            record = consumer.poll(1.0)
            if record is None:
                continue
            if record.error():
                if record.error().code() == KafkaError._PARTITION_EOF:
                    continue
                print("error:", record.error(), flush=True)
                break
            print(f"partition {record.partition()} offset {record.offset()}: "
                  f"{record.value().decode()}", flush=True)
    except KeyboardInterrupt:
        pass
    finally:
        # close() commits and sends LeaveGroup: the group rebalances at once.
        consumer.close()


if __name__ == "__main__":
    run("click-processors", ["user-clicks"])
