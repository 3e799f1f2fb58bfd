// Exports log records to edgelog with the OpenTelemetry JS SDK's own OTLP/HTTP exporters, the way
// an instrumented Node.js service does. Driven by tests/ingest_otlp.rs; no request is written by
// hand here: the SDK builds the records, the exporter encodes, compresses, sends and retries.
//
//   node otlp.mjs <base-url> <json|proto> <gzip|none> <records> <service.name> [exports] [token]
//
// The records are made once (through a LoggerProvider, as a service logs them) and then handed
// to the exporter `exports` times (default 2): the second call is the same export again, exactly
// what an exporter's retry sends. Each export's result is printed as one JSON line.
import { diag, DiagLogLevel } from '@opentelemetry/api';
import { SeverityNumber } from '@opentelemetry/api-logs';
import { resourceFromAttributes } from '@opentelemetry/resources';
import {
  InMemoryLogRecordExporter,
  LoggerProvider,
  SimpleLogRecordProcessor,
} from '@opentelemetry/sdk-logs';
import { OTLPLogExporter as JsonExporter } from '@opentelemetry/exporter-logs-otlp-http';
import { OTLPLogExporter as ProtoExporter } from '@opentelemetry/exporter-logs-otlp-proto';

const [base, encoding, compression, count, service, exportsArg, token] = process.argv.slice(2);
const records = Number(count);
const exports = Number(exportsArg ?? 2);

// The exporter's retry decisions, on stdout for the test to follow ("Scheduling export retry").
diag.setLogger(
  {
    verbose: (m) => console.log(JSON.stringify({ diag: m })),
    debug: () => {},
    info: (m) => console.log(JSON.stringify({ diag: m })),
    warn: (m) => console.log(JSON.stringify({ diag: m })),
    error: (m) => console.log(JSON.stringify({ diag: m })),
  },
  DiagLogLevel.VERBOSE,
);

const memory = new InMemoryLogRecordExporter();
const provider = new LoggerProvider({
  resource: resourceFromAttributes({
    'service.name': service,
    'service.instance.id': 'instance-1',
    'deployment.environment': 'test',
  }),
  processors: [new SimpleLogRecordProcessor({ exporter: memory })],
});
const logger = provider.getLogger('edgelog-client-test', '1.0.0');
const levels = [
  [SeverityNumber.INFO, 'INFO'],
  [SeverityNumber.WARN, 'WARN'],
  [SeverityNumber.ERROR, 'ERROR'],
];
for (let i = 0; i < records; i++) {
  const [severityNumber, severityText] = levels[i % levels.length];
  logger.emit({
    timestamp: new Date(Date.UTC(2024, 4, 1, 12, 0, 0) + i),
    severityNumber,
    severityText,
    body: `record ${i} from ${service}`,
    attributes: {
      'record.index': i,
      'http.route': '/checkout',
      'duration.ms': 12.5,
      ok: i % 2 === 0,
      tags: ['a', 'b'],
    },
  });
}
await provider.forceFlush();
const finished = memory.getFinishedLogRecords();

const Exporter = encoding === 'json' ? JsonExporter : ProtoExporter;
const exporter = new Exporter({
  url: `${base}/v1/logs`,
  compression: compression === 'gzip' ? 'gzip' : 'none',
  headers: token ? { Authorization: `Bearer ${token}` } : {},
  timeoutMillis: 60000,
});
const exportOnce = () =>
  new Promise((resolve) => exporter.export(finished, (result) => resolve(result)));
let failed = 0;
for (let n = 1; n <= exports; n++) {
  const result = await exportOnce();
  if (result.code !== 0) failed++;
  console.log(
    JSON.stringify({ export: n, records: finished.length, code: result.code, error: result.error?.message }),
  );
}
await exporter.shutdown();
process.exit(failed ? 1 : 0);
