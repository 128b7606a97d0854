// amqplib against the broker (run by tests/interop/test_amqplib.py):
// a burst of publishes on a confirm channel, then a close right away, so
// the close reaches the broker in the same read as the publishes, or
// overtakes publishes amqplib still queues on the channel (issue 17).
//
//   node confirm_burst.js URL channel|connection COUNT
//
// Prints one JSON line: publish callbacks called (acked or failed), the
// errors amqplib reported, and whether the connection's close completed.
// Exits 2 if the close never completes (the application would hang).
'use strict';

const amqp = require('amqplib');

const HANG_MS = 20000;

async function main() {
  const [url, mode, countText] = process.argv.slice(2);
  const count = Number(countText);
  const result = { acked: 0, failed: 0, errors: [], closed: false };
  const report = () => console.log(JSON.stringify(result));
  const hang = setTimeout(() => {
    result.errors.push(`close did not complete within ${HANG_MS} ms`);
    report();
    process.exit(2);
  }, HANG_MS);

  const connection = await amqp.connect(url, { heartbeat: 0 });
  connection.on('error', (err) => result.errors.push(`connection error: ${err.message}`));
  const connectionClosed = new Promise((resolve) => connection.on('close', resolve));
  const channel = await connection.createConfirmChannel();
  channel.on('error', (err) => result.errors.push(`channel error: ${err.message}`));
  const { queue } = await channel.assertQueue('', { exclusive: true });

  for (let i = 0; i < count; i++) {
    channel.publish('', queue, Buffer.from(`message ${i}`), {}, (err) => {
      if (err) result.failed++;
      else result.acked++;
    });
  }
  if (mode === 'channel') {
    await channel.close();
  }
  await connection.close();
  await connectionClosed;
  result.closed = true;
  clearTimeout(hang);
  report();
}

main().catch((err) => {
  console.log(JSON.stringify({ errors: [`${err.name}: ${err.message}`], closed: false }));
  process.exit(1);
});
