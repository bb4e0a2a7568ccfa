"""A worker competing for the messages of the RabbitMQ queue `tasks`.

Usage: python3 starter.py AMQP_URL
It takes whatever the broker hands it and works on each message. As written, it asks to
acknowledge messages and then never does, so each one it was handed stays unacked with it.
"""
import os
import sys
import time

import pika

URL = sys.argv[1] if len(sys.argv) > 1 else "amqp://guest:guest@127.0.0.1:5672/%2f"
QUEUE = "tasks"
# The consumer tag and the connection's name: the page shows them.
NAME = f"learner-{os.getpid()}"


def handle(channel, method, properties, body):
    print(f"{NAME} handles #{method.delivery_tag}: {body.decode(errors='replace')}", flush=True)
    time.sleep(0.2)  # the work
    # TODO: acknowledge the message (channel.basic_ack), so RabbitMQ can forget it.


def main():
    parameters = pika.URLParameters(URL)
    parameters.client_properties = {"connection_name": NAME}
    connection = pika.BlockingConnection(parameters)
    channel = connection.channel()
    # The queue is grouplab's: consume from it as it is, without declaring it anew.
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
