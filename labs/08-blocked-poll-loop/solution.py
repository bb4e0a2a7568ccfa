"""A consumer of `thumbnails` that keeps polling while a worker thread does the slow work.

Usage: python3 solution.py BOOTSTRAP
"""
import queue
import sys
import threading
import time

from confluent_kafka import Consumer, TopicPartition

BOOTSTRAP = sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1:9092"
CAPACITY = 20


def resize(record):
    time.sleep(4)
    print(f"resized partition {record.partition()} offset {record.offset()}", flush=True)


def work(consumer, inbox):
    while True:
        record = inbox.get()
        if record is None:
            return
        resize(record)
        # Only now is the message done: store its offset for the next background commit.
        consumer.store_offsets(offsets=[
            TopicPartition(record.topic(), record.partition(), record.offset() + 1)
        ])


def main():
    consumer = Consumer({
        "bootstrap.servers": BOOTSTRAP,
        "group.id": "resizers",
        "client.id": "lab08-python",
        "auto.offset.reset": "earliest",
        "session.timeout.ms": 10000,
        "max.poll.interval.ms": 10000,
        # Commit in the background, but only offsets the worker stored after processing.
        "enable.auto.commit": True,
        "enable.auto.offset.store": False,
    })
    consumer.subscribe(["thumbnails"])
    inbox = queue.Queue(maxsize=CAPACITY)
    worker = threading.Thread(target=work, args=(consumer, inbox), daemon=True)
    worker.start()
    paused = False
    try:
        while True:
            if paused and inbox.qsize() <= CAPACITY // 2:
                consumer.resume(consumer.assignment())
                paused = False
            # Polling often keeps the member in its group, whatever the worker is doing.
            record = consumer.poll(0.1)
            if record is None:
                continue
            if record.error():
                print("error:", record.error(), flush=True)
                continue
            try:
                inbox.put_nowait(record)
            except queue.Full:
                # Full: stop fetching, and come back to this record once there is room.
                consumer.pause(consumer.assignment())
                paused = True
                consumer.seek(TopicPartition(record.topic(), record.partition(), record.offset()))
    except KeyboardInterrupt:
        pass
    finally:
        inbox.put(None)
        consumer.close()


if __name__ == "__main__":
    main()
