// `phantom-sidecar` (no command): configuration, both listeners, readiness, and a graceful drain on SIGTERM.
import { loadConfig } from '../config/config.ts';
import { buildAdmin, type Readiness } from '../admin.ts';
import { createLogger } from '../log.ts';
import { buildSidecar } from '../server.ts';
import { configOrFail, fail } from './exit.ts';

/** EADDRINUSE and friends, said as the variable to change. */
function listenFailure(error: unknown, variable: string, host: string, port: number): string {
  const code = (error as NodeJS.ErrnoException).code;
  if (code === 'EADDRINUSE') return `${variable}: port ${port} on ${host} is already in use`;
  if (code === 'EACCES') return `${variable}: not allowed to listen on port ${port}`;
  return `${variable}: cannot listen on ${host}:${port} (${code ?? 'error'})`;
}

export async function run(): Promise<void> {
  const config = configOrFail(() => loadConfig());
  const logger = createLogger(config.logLevel, undefined, config.logTime);
  let listening = false;
  let stopping = false;
  for (const setting of config.weakened) logger.warn({ setting }, 'a check is loosened by configuration');
  const sidecar = await buildSidecar(config, { logger });
  const { app, tokens, metrics } = sidecar;
  // Ready once listening and, with discovery, once the AS's metadata is known; not while draining.
  const readiness: Readiness = {
    get ready() {
      return listening && !stopping && sidecar.ready();
    },
  };
  // Metadata that contradicts the configuration is a configuration error like any other.
  void sidecar.configurationError.then((error) => fail(error.message));
  const admin = buildAdmin({ logger, deadlines: config.http, readiness, jwks: tokens.jwks, metrics, resourceMetadata: sidecar.resourceMetadata, ssf: sidecar.ssf });

  try {
    await admin.listen({ host: config.admin.host, port: config.admin.port });
  } catch (error) {
    fail(listenFailure(error, 'PHANTOM_ADMIN_PORT', config.admin.host, config.admin.port));
  }
  try {
    await app.listen({ host: config.listen.host, port: config.listen.port });
  } catch (error) {
    fail(listenFailure(error, 'PHANTOM_LISTEN_PORT', config.listen.host, config.listen.port));
  }
  listening = true;
  logger.info(
    { upstream_token: config.upstreamToken.mode, require_binding: config.requireBinding, cache_max_ttl_s: config.cache.maxTtlSeconds },
    'phantom-sidecar ready',
  );
  // Said in the log, never a gate: readiness stays the listener's.
  void sidecar.probe();

  // SIGTERM: no new connections; every request already accepted is answered in full, each on
  // a connection that then closes; past PHANTOM_DRAIN_TIMEOUT_S what is left is cut.
  const stop = async (signal: string): Promise<void> => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal, drain_timeout_s: config.http.drainTimeoutSeconds }, 'draining');
    sidecar.drain();
    const deadline = setTimeout(() => {
      logger.warn('drain timeout: closing the connections left');
      app.server.closeAllConnections();
    }, config.http.drainTimeoutSeconds * 1000);
    deadline.unref();
    await app.close();
    await admin.close();
    logger.flush();
    process.exit(0);
  };
  process.once('SIGTERM', () => void stop('SIGTERM'));
  process.once('SIGINT', () => void stop('SIGINT'));
}

