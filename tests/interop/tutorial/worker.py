#!/usr/bin/env python
"""RabbitMQ tutorial 2 ("Work queues"), worker: fair dispatch with prefetch 1
and manual acks; sleeps DOT_SECONDS (default 1) per dot in the message.
Broker from AMQP_HOST / AMQP_PORT. Runs until terminated."""
import os
import time

import pika

DOT_SECONDS = float(os.environ.get('DOT_SECONDS', '1'))

connection = pika.BlockingConnection(
    pika.ConnectionParameters(host=os.environ.get('AMQP_HOST', 'localhost'),
                              port=int(os.environ.get('AMQP_PORT', '5672'))))
channel = connection.channel()

channel.queue_declare(queue='task_queue', durable=True)
print(' [*] Waiting for messages. To exit press CTRL+C', flush=True)


def callback(ch, method, properties, body):
    print(f" [x] Received {body.decode()}", flush=True)
    time.sleep(body.count(b'.') * DOT_SECONDS)
    print(" [x] Done", flush=True)
    ch.basic_ack(delivery_tag=method.delivery_tag)


channel.basic_qos(prefetch_count=1)
channel.basic_consume(queue='task_queue', on_message_callback=callback)

channel.start_consuming()
