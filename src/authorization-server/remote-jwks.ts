// jose's remote JWKS over an undici dispatcher that trusts the configured CA: the one way the
// sidecar fetches an issuer's keys (the AS's for signed answers, a transmitter's for SETs).
// An unknown kid refetches the set at most once per cooldown.
import type { JWTVerifyGetKey } from 'jose';
import { createRemoteJWKSet, customFetch } from 'jose/jwks/remote';
import { fetch, type Dispatcher } from 'undici';

export function remoteKeySet(url: URL, dispatcher: Dispatcher, options: { cooldownSeconds?: number; timeoutMs?: number } = {}): JWTVerifyGetKey {
  return createRemoteJWKSet(url, {
    ...(options.cooldownSeconds === undefined ? {} : { cooldownDuration: options.cooldownSeconds * 1000 }),
    ...(options.timeoutMs === undefined ? {} : { timeoutDuration: options.timeoutMs }),
    [customFetch]: (input, init) => fetch(input, { ...(init as object), dispatcher } as Parameters<typeof fetch>[1]) as unknown as Promise<Response>,
  });
}
