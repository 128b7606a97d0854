"""Quick pika publish -> consume throughput (client-bound: pika is the
bottleneck, not the broker). Usage:

    .venv/bin/python bench/pika_throughput.py amqp://guest:guest@127.0.0.1:5672/%2F 50000

Publishes N 16-byte transient messages to a server-named queue, then
consumes them with prefetch 1000 and multiple acks every 100; prints msg/s
for both phases. The real benchmark suite is issue 5's bench/run.py."""
import pika, time, sys, threading
url = sys.argv[1]; N = int(sys.argv[2])
c = pika.BlockingConnection(pika.URLParameters(url)); ch = c.channel()
q = ch.queue_declare('', exclusive=True).method.queue
body = b'x' * 16
t0 = time.time()
for i in range(N): ch.basic_publish('', q, body)
t1 = time.time()
got = 0
ch.basic_qos(prefetch_count=1000)
def cb(ch_, m, p, b):
    global got
    got += 1
    if got % 100 == 0 or got == N: ch_.basic_ack(m.delivery_tag, multiple=True)
    if got == N: ch_.stop_consuming()
ch.basic_consume(q, cb)
ch.start_consuming()
t2 = time.time()
print(f"publish {N/(t1-t0):.0f} msg/s, consume {N/(t2-t1):.0f} msg/s")
c.close()
