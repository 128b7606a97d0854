"""Consume the crash-test queue with manual acks, keeping some messages
unacked, until the broker goes away.

Lines printed (flushed):
  ``recv N R VERDICT``  delivery of message N, R = redelivered 0/1, VERDICT
                        ``ok`` or ``bad:<what differs>`` (corpus.mismatch)
  ``ack N``             basic.ack for N was written to the socket
  ``hold N``            N stays unacked until the connection dies
  ``durable``           every ack printed before this line is on disk: a
                        confirmed persistent publish on the same channel
                        followed them, and the WAL is one ordered log
  ``nack checkpoint``   the broker nacked that checkpoint publish
  ``channel-closed C T``, ``connection-closed C T``, ``error E``: a broker
                        error ended the script (corpus.report_failure)

Usage: python -m tests.crash.consumer URL QUEUE CHECKPOINT_QUEUE SEED
"""

from __future__ import annotations

import random
import sys

import pika

from tests.crash.corpus import mismatch, number_of, report_failure

PREFETCH = 40
MAX_HELD = 12
HOLD_PROBABILITY = 0.2
ACKS_PER_CHECKPOINT = 8


def main(url: str, queue: str, checkpoint_queue: str, seed: int) -> None:
    rng = random.Random(seed)
    held = 0
    unconfirmed_acks = 0
    try:
        connection = pika.BlockingConnection(pika.URLParameters(url))
        channel = connection.channel()
        channel.queue_declare(queue, durable=True)
        channel.queue_declare(checkpoint_queue, durable=True)
        channel.confirm_delivery()
        channel.basic_qos(prefetch_count=PREFETCH)

        def on_message(ch, method, properties, body):
            nonlocal held, unconfirmed_acks
            problem = mismatch(properties, body)
            n = number_of(properties)
            verdict = "ok" if problem is None else "bad:" + problem.replace("\n", " ")
            print(f"recv {n} {int(method.redelivered)} {verdict}", flush=True)
            if held < MAX_HELD and rng.random() < HOLD_PROBABILITY:
                held += 1
                print(f"hold {n}", flush=True)
                return
            ch.basic_ack(method.delivery_tag)
            print(f"ack {n}", flush=True)
            unconfirmed_acks += 1
            if unconfirmed_acks >= ACKS_PER_CHECKPOINT:
                try:
                    ch.basic_publish("", checkpoint_queue, b"checkpoint",
                                     pika.BasicProperties(delivery_mode=2))
                except pika.exceptions.NackError:
                    print("nack checkpoint", flush=True)
                    unconfirmed_acks = 0
                    return
                unconfirmed_acks = 0
                print("durable", flush=True)

        channel.basic_consume(queue, on_message)
        channel.start_consuming()
    except pika.exceptions.AMQPError as exc:
        report_failure(exc)
    except OSError:
        return


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]))
