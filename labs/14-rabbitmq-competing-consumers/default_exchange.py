"""A worker written the way some client libraries work: it "sets up" the default exchange
before it consumes, and RabbitMQ refuses that.

Usage: python3 default_exchange.py AMQP_URL
The default exchange (named "") is built in: every queue is bound to it by its own name, and
nobody may declare, delete or bind it. The broker answers ACCESS_REFUSED and closes the
channel, so nothing this worker does on that channel afterwards can work.
"""
import os
import sys

import pika

URL = sys.argv[1] if len(sys.argv) > 1 else "amqp://guest:guest@127.0.0.1:5672/%2f"
QUEUE = "tasks"
NAME = f"learner-{os.getpid()}"


def main():
    parameters = pika.URLParameters(URL)
    parameters.client_properties = {"connection_name": NAME}
    connection = pika.BlockingConnection(parameters)
    channel = connection.channel()
    try:
        # The mistake: the default exchange exists already and cannot be declared.
        channel.exchange_declare(exchange="", exchange_type="direct")
        channel.basic_consume(QUEUE, lambda *args: None, auto_ack=True, consumer_tag=NAME)
        channel.start_consuming()
    except pika.exceptions.ChannelClosedByBroker as refusal:
        print(f"{NAME}: RabbitMQ closed the channel: {refusal.reply_code} {refusal.reply_text}", flush=True)
        # Like a worker whose library swallowed the error: connected, and waiting for nothing.
        try:
            connection.sleep(3600)
        except KeyboardInterrupt:
            pass
    except KeyboardInterrupt:
        pass
    finally:
        if connection.is_open:
            connection.close()


if __name__ == "__main__":
    main()
