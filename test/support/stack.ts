// The real-parts stack the end-to-end tests stand on: the oidc-provider AS, an echo API and
// the sidecar between them, configured by `env(as)` on top of the base environment.
import type { RunningAuthorizationServer } from '../../deploy/authorization-server/server.ts';
import { startTestAuthorizationServer } from './as.ts';
import { makePki, type Pki } from './pki.ts';
import { baseEnv, startSidecar, type RunningSidecar } from './sidecar.ts';
import { startEchoUpstream, type EchoUpstream } from './upstream.ts';

export interface Stack {
  pki: Pki;
  as: RunningAuthorizationServer;
  upstream: EchoUpstream;
  sidecar: RunningSidecar;
  /** Introspection calls the AS has answered so far. */
  introspections(): number;
  stop(): Promise<void>;
}

export async function startStack(env: (as: RunningAuthorizationServer, upstream: EchoUpstream) => Record<string, string> = () => ({})): Promise<Stack> {
  const pki = makePki();
  const as = await startTestAuthorizationServer(pki);
  const upstream = await startEchoUpstream();
  const sidecar = await startSidecar({ ...baseEnv(pki, upstream.url, as.introspectionUrl), ...env(as, upstream) });
  return {
    pki,
    as,
    upstream,
    sidecar,
    introspections: () => as.requests.get('/token/introspection') ?? 0,
    stop: async () => {
      await sidecar.stop();
      await upstream.stop();
      await as.stop();
    },
  };
}
