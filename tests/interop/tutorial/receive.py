#!/usr/bin/env python
"""RabbitMQ tutorial 1 ("Hello World!"), consumer: takes one message, acks it,
stops consuming. Broker from AMQP_HOST / AMQP_PORT."""
import os
import sys

import pika


def main():
    connection = pika.BlockingConnection(
        pika.ConnectionParameters(host=os.environ.get('AMQP_HOST', 'localhost'),
                                  port=int(os.environ.get('AMQP_PORT', '5672'))))
    channel = connection.channel()

    channel.queue_declare(queue='hello')
    channel.basic_qos(prefetch_count=1)

    def callback(ch, method, properties, body):
        print(f" [x] Received {body.decode()}", flush=True)
        ch.basic_ack(delivery_tag=method.delivery_tag)
        ch.stop_consuming()

    channel.basic_consume(queue='hello', on_message_callback=callback)

    print(' [*] Waiting for messages. To exit press CTRL+C', flush=True)
    channel.start_consuming()
    connection.close()


if __name__ == '__main__':
    try:
        main()
    except KeyboardInterrupt:
        print('Interrupted')
        sys.exit(0)
