// Ships logs to edgelog's Loki push endpoint with winston and winston-loki, as a Node.js service
// using Grafana Loki does. Driven by tests/ingest_loki.rs; winston-loki encodes (snappy protobuf,
// Loki's default, or JSON), batches, sends and re-queues a failed batch for its next send.
//
//   node loki.mjs <base-url> <proto|json> <records> <service_name> [rounds] [token]
//
// The same records (same timestamps, labels, lines and metadata) are logged `rounds` times
// (default 2), flushing after each round: the second round is a resend of the first.
import winston from 'winston';
import LokiTransport from 'winston-loki';

const [base, encoding, count, service, roundsArg, token] = process.argv.slice(2);
const records = Number(count);
const rounds = Number(roundsArg ?? 2);
const errors = [];

const transport = new LokiTransport({
  host: base,
  json: encoding === 'json',
  labels: { service_name: service, instance: 'web-1' },
  batching: true,
  replaceTimestamp: false, // keep each record's own time: a resend is the same entry
  gracefulShutdown: false,
  interval: 0.2, // seconds between sends; each round waits for its flush
  headers: token ? { Authorization: `Bearer ${token}` } : {},
  timeout: 60000,
  onConnectionError: (err) => {
    errors.push(err.message);
    console.log(JSON.stringify({ error: err.message, status: err.statusCode }));
  },
});
const logger = winston.createLogger({ level: 'debug', transports: [transport] });
// winston hands records to the transport asynchronously; a round is flushed once all of its
// records are in the transport's batch.
let logged = 0;
const allLogged = (n) =>
  new Promise((resolve) => {
    const check = () => (logged >= n ? resolve() : setTimeout(check, 5));
    check();
  });
transport.on('logged', () => logged++);
const levels = ['info', 'warn', 'error'];

for (let round = 1; round <= rounds; round++) {
  for (let i = 0; i < records; i++) {
    logger.log({
      level: levels[i % levels.length],
      message: `line ${i} from ${service}`,
      timestamp: new Date(Date.UTC(2024, 4, 1, 12, 0, 0) + i).toISOString(),
      request_id: `req-${i}`,
    });
  }
  await allLogged(round * records);
  await transport.flush();
  console.log(JSON.stringify({ round, records, errors: errors.length }));
}
await transport.close();
process.exit(errors.length ? 1 : 0);
