// Starts the sidecar in-process from a PHANTOM_* environment, with its log lines captured.
import { Writable } from 'node:stream';
import type { AddressInfo } from 'node:net';
import { loadConfig, type Config } from '../../src/config/config.ts';
import { buildAdmin } from '../../src/admin.ts';
import { createLogger } from '../../src/log.ts';
import { buildSidecar, type Sidecar, type SidecarParts } from '../../src/server.ts';
import type { Pki } from './pki.ts';

export interface RunningSidecar extends Sidecar {
  port: number;
  adminPort: number;
  config: Config;
  /** Every log line written so far, raw. */
  logs: string[];
  stop(): Promise<void>;
}

export function baseEnv(pki: Pki, upstreamUrl: string, introspectionUrl: string): Record<string, string> {
  return {
    PHANTOM_LISTEN_HOST: '127.0.0.1',
    PHANTOM_LISTEN_PORT: '0',
    PHANTOM_ADMIN_HOST: '127.0.0.1',
    PHANTOM_ADMIN_PORT: '0',
    PHANTOM_TLS_CERT: pki.path('server.pem'),
    PHANTOM_TLS_KEY: pki.path('server.key'),
    PHANTOM_TLS_CLIENT_CA: pki.path('ca.pem'),
    PHANTOM_UPSTREAM_URL: upstreamUrl,
    PHANTOM_INTROSPECTION_URL: introspectionUrl,
    PHANTOM_INTROSPECTION_CLIENT_ID: 'phantom-sidecar',
    PHANTOM_INTROSPECTION_CLIENT_SECRET: 'sidecar-secret-0123456789',
    PHANTOM_INTROSPECTION_CA: pki.path('ca.pem'),
    PHANTOM_JWT_ISSUER: 'https://sidecar.test',
    PHANTOM_JWT_AUDIENCE: 'https://api.internal.test',
    PHANTOM_LOG_LEVEL: 'info',
    PHANTOM_EXPECTED_AUDIENCE: 'https://api.example.com',
  };
}

export async function startSidecar(env: Record<string, string>, parts: Partial<SidecarParts> = {}): Promise<RunningSidecar> {
  const config = loadConfig(env);
  const logs: string[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      logs.push(...chunk.toString('utf8').split('\n').filter(Boolean));
      done();
    },
  });
  const logger = createLogger(config.logLevel, sink);
  const sidecar = await buildSidecar(config, { ...parts, logger });
  const admin = buildAdmin({ logger, deadlines: config.http, readiness: { get ready() { return sidecar.ready(); } }, jwks: sidecar.tokens.jwks, metrics: sidecar.metrics, resourceMetadata: sidecar.resourceMetadata, ssf: sidecar.ssf });
  await admin.listen({ host: '127.0.0.1', port: 0 });
  await sidecar.app.listen({ host: '127.0.0.1', port: 0 });
  return {
    ...sidecar,
    config,
    logs,
    port: (sidecar.app.server.address() as AddressInfo).port,
    adminPort: (admin.server.address() as AddressInfo).port,
    stop: async () => {
      await sidecar.app.close();
      await admin.close();
    },
  };
}

/** The access lines (one per request), parsed. */
export function accessLines(logs: readonly string[]): Record<string, unknown>[] {
  return logs.map((line) => JSON.parse(line) as Record<string, unknown>).filter((line) => line.msg === 'request');
}

/**
 * The access line of one response, found by its x-fapi-interaction-id. The line is written
 * when the response has finished, which can be a moment after the client has read it.
 */
export async function accessLineFor(logs: readonly string[], response: { headers: Record<string, unknown> }): Promise<Record<string, unknown>> {
  const id = response.headers['x-fapi-interaction-id'];
  for (let attempt = 0; attempt < 200; attempt += 1) {
    const line = accessLines(logs).find((candidate) => candidate.interaction_id === id);
    if (line !== undefined) return line;
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  throw new Error(`no access line for interaction id ${String(id)}`);
}
