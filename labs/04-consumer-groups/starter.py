"""A consumer for the click-processors group. Fill in the TODOs."""
import sys

from confluent_kafka import Consumer

BOOTSTRAP = sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1:9092"


def run(group_id, topics):
    consumer = Consumer({
        "bootstrap.servers": BOOTSTRAP,
        "group.id": group_id,
        # The name the lab page shows for this member.
        "client.id": "lab04-starter",
        # A killed consumer is noticed after 10 seconds, like the page's instances.
        "session.timeout.ms": 10000,
        # Read from the beginning when the group has no committed offset yet.
        "auto.offset.reset": "earliest",
    })
    # TODO: pass callbacks that print the partitions assigned and revoked.
    consumer.subscribe(topics)
    try:
        while True:
            record = consumer.poll(1.0)
            if record is None:
                continue
            if record.error():
                print("error:", record.error())
                continue
            # TODO: also print the partition and offset the record came from.
            print("got", record.value().decode())
    except KeyboardInterrupt:
        pass
    finally:
        consumer.close()


if __name__ == "__main__":
    run("click-processors", ["user-clicks"])
