"""Publish corpus messages FIRST..FIRST+COUNT-1 to a durable queue with
publisher confirms, one at a time, PACE seconds apart (so that a kill lands mid-stream), until
done or the broker goes away.

Prints ``sent N`` before each publish and ``ok N`` once its confirm has
arrived, ``nack N`` when the broker nacked it, flushing each line: every
``ok`` message must survive a crash. Exits 0 when the connection is lost
(that is the expected end); a close the broker sent or a channel error is
printed (corpus.report_failure) and ends the script with status 0 too: the
test counts those lines.

Usage: python -m tests.crash.publisher URL QUEUE FIRST COUNT PACE
"""

from __future__ import annotations

import sys

import pika

from tests.crash.corpus import expected_body, expected_properties, report_failure


def main(url: str, queue: str, first: int, count: int, pace: float) -> None:
    try:
        connection = pika.BlockingConnection(pika.URLParameters(url))
        channel = connection.channel()
        channel.queue_declare(queue, durable=True)
        channel.confirm_delivery()
        for n in range(first, first + count):
            print(f"sent {n}", flush=True)
            try:
                channel.basic_publish("", queue, expected_body(n), expected_properties(n))
            except pika.exceptions.NackError:
                print(f"nack {n}", flush=True)
            else:
                print(f"ok {n}", flush=True)
            connection.sleep(pace)
        while True:                      # done: wait for the broker to be killed
            connection.process_data_events(time_limit=0.2)
    except pika.exceptions.AMQPError as exc:
        report_failure(exc)
    except OSError:
        return


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5]))
