"""A consumer of `user-actions` that checks the order in which messages arrive.

Usage: python3 solution.py BOOTSTRAP
"""
import sys

from confluent_kafka import Consumer

BOOTSTRAP = sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1:9092"


def number(record):
    return int(record.value().decode().split("#")[1].split()[0])


def main():
    consumer = Consumer({
        "bootstrap.servers": BOOTSTRAP,
        "group.id": "action-processors",
        "client.id": "lab10-python",
        "auto.offset.reset": "earliest",
        "session.timeout.ms": 10000,
    })
    consumer.subscribe(["user-actions"])
    last_by_key = {}
    last_overall = 0
    try:
        while True:
            record = consumer.poll(1.0)
            if record is None or record.error():
                continue
            key = record.key().decode() if record.key() else None
            n = number(record)
            note = ""
            if key is not None and n < last_by_key.get(key, 0):
                note = f"  OUT OF ORDER for {key}: after #{last_by_key[key]}"
            elif n < last_overall:
                note = f"  (after #{last_overall} from another partition: fine)"
            if key is not None:
                last_by_key[key] = max(n, last_by_key.get(key, 0))
            last_overall = max(n, last_overall)
            print(f"P{record.partition()} #{n} key {key}{note}", flush=True)
    except KeyboardInterrupt:
        pass
    finally:
        consumer.close()


if __name__ == "__main__":
    main()
