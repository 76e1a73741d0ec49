// One load generator, as its own process (the bench pins it to the load core): either
// autocannon over keep-alive mTLS connections, or one request per new TLS 1.3 connection.
// Prints one JSON line: requests answered, non-2xx and errors, p50/p99 latency in ms.
// Settings (env): LOAD_URL, LOAD_TOKEN, LOAD_CONNECTIONS, LOAD_SECONDS, LOAD_RATE (req/s,
// optional), LOAD_MODE (keepalive | connections), LOAD_CERT, LOAD_KEY, LOAD_CA (PEM paths).
import { readFileSync } from 'node:fs';
import { request } from 'node:https';
import autocannon from 'autocannon';

const url = new URL(process.env.LOAD_URL ?? '');
const token = process.env.LOAD_TOKEN ?? '';
const connections = Number(process.env.LOAD_CONNECTIONS ?? 50);
const seconds = Number(process.env.LOAD_SECONDS ?? 8);
const rate = process.env.LOAD_RATE === undefined ? undefined : Number(process.env.LOAD_RATE);
const tls = { cert: readFileSync(process.env.LOAD_CERT ?? ''), key: readFileSync(process.env.LOAD_KEY ?? ''), ca: readFileSync(process.env.LOAD_CA ?? ''), servername: 'localhost' };

interface Result {
  requests: number;
  bad: number;
  p50: number;
  p99: number;
}

async function keepAlive(): Promise<Result> {
  const result = await autocannon({
    url: url.href,
    connections,
    duration: seconds,
    ...(rate === undefined ? {} : { overallRate: rate }),
    headers: { authorization: `Bearer ${token}` },
    tlsOptions: tls,
  } as autocannon.Options);
  return { requests: result.requests.total, bad: result.non2xx + result.errors, p50: result.latency.p50, p99: result.latency.p99 };
}

/** Each request on a TLS 1.3 connection of its own: what a partner without keep-alive costs. */
async function newConnections(): Promise<Result> {
  const deadline = Date.now() + seconds * 1000;
  const latencies: number[] = [];
  let bad = 0;
  const one = (): Promise<void> =>
    new Promise((resolve) => {
      const started = performance.now();
      const req = request({ host: url.hostname, port: url.port, path: url.pathname, method: 'GET', agent: false, minVersion: 'TLSv1.3', headers: { authorization: `Bearer ${token}`, connection: 'close' }, ...tls }, (res) => {
        res.resume();
        res.on('end', () => {
          if (res.statusCode !== 200) bad += 1;
          latencies.push(performance.now() - started);
          resolve();
        });
      });
      req.on('error', () => {
        bad += 1;
        resolve();
      });
      req.end();
    });
  await Promise.all(Array.from({ length: connections }, async () => {
    while (Date.now() < deadline) await one();
  }));
  latencies.sort((a, b) => a - b);
  const at = (p: number): number => latencies[Math.min(latencies.length - 1, Math.floor((p / 100) * latencies.length))] ?? Number.NaN;
  return { requests: latencies.length, bad, p50: at(50), p99: at(99) };
}

const result = process.env.LOAD_MODE === 'connections' ? await newConnections() : await keepAlive();
process.stdout.write(`${JSON.stringify(result)}\n`);
