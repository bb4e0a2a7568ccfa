"""A well-behaved worker on the RabbitMQ queue `tasks`.

Usage: python3 solution.py AMQP_URL
- prefetch 1: the broker hands it one message at a time, the next once it has acknowledged the
  last, so a slow worker never sits on work a fast one could do;
- it acknowledges each message after working on it, so a crash mid-work hands the message back;
- a message it cannot process ("poison") is rejected without requeueing: the queue's
  dead-letter settings send it to `tasks.dead` instead of around in circles.
"""
import os
import sys
import time

import pika

URL = sys.argv[1] if len(sys.argv) > 1 else "amqp://guest:guest@127.0.0.1:5672/%2f"
QUEUE = "tasks"
NAME = f"learner-{os.getpid()}"


def handle(channel, method, properties, body):
    text = body.decode(errors="replace")
    again = " (redelivered)" if method.redelivered else ""
    print(f"{NAME} handles #{method.delivery_tag}{again}: {text}", flush=True)
    if "poison" in text:
        channel.basic_reject(method.delivery_tag, requeue=False)
        print(f"{NAME} rejected #{method.delivery_tag} for good", flush=True)
        return
    time.sleep(0.2)  # the work
    channel.basic_ack(method.delivery_tag)


def main():
    parameters = pika.URLParameters(URL)
    parameters.client_properties = {"connection_name": NAME}
    connection = pika.BlockingConnection(parameters)
    channel = connection.channel()
    channel.basic_qos(prefetch_count=1)
    channel.basic_consume(QUEUE, handle, auto_ack=False, consumer_tag=NAME)
    try:
        channel.start_consuming()
    except KeyboardInterrupt:
        pass
    finally:
        if connection.is_open:
            connection.close()


if __name__ == "__main__":
    main()
