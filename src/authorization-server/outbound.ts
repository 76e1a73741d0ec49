// Every outbound HTTPS client of the sidecar (introspection, discovery, the AS's and a
// transmitter's keys, the transmitter's configuration) is made here: the server's certificate
// and host name verified against the configured CA (the system's roots without one), and
// every phase of the exchange within one deadline.
import { Agent, Pool } from 'undici';

export interface Outbound {
  /** PEM of the CA the server's certificate must chain to; undefined: the system's roots. */
  ca: string | undefined;
  timeoutMs: number;
  /** The sidecar's own certificate, for mutual TLS to the AS. */
  clientCertificate?: { cert: string; key: string };
}

function options({ ca, timeoutMs, clientCertificate }: Outbound) {
  return {
    connectTimeout: timeoutMs,
    headersTimeout: timeoutMs,
    bodyTimeout: timeoutMs,
    connect: { ca, rejectUnauthorized: true, ...(clientCertificate ?? {}) },
  };
}

/** A dispatcher for any origin. */
export function verifiedAgent(outbound: Outbound): Agent {
  return new Agent(options(outbound));
}

/**
 * A kept-alive pool to one origin (the introspection endpoint): one request per connection,
 * at most `connections` of them (each kept-alive TLS connection holds about 0.2 MB, measured);
 * calls beyond wait for one, within their deadline.
 */
export function verifiedPool(origin: string, outbound: Outbound, connections: number): Pool {
  return new Pool(origin, { ...options(outbound), connections, pipelining: 1, keepAliveTimeout: 30_000 });
}
