// The example internal API: what sits behind the sidecar in the pod. It trusts nothing but
// the JWT it receives, verified against the sidecar's JWKS with a pinned algorithm and its
// iss, aud, typ and exp checked. It listens on loopback only: the sidecar is its one door.
import Fastify, { type FastifyInstance } from 'fastify';
import { createRemoteJWKSet, jwtVerify, type JWTPayload } from 'jose';

export interface ExampleApiOptions {
  host: string;
  port: number;
  jwksUrl: string;
  issuer: string;
  audience: string;
  algorithms: string[];
}

declare module 'fastify' {
  interface FastifyRequest {
    caller: JWTPayload;
  }
}

export function buildExampleApi(options: ExampleApiOptions): FastifyInstance {
  const jwks = createRemoteJWKSet(new URL(options.jwksUrl), { cooldownDuration: 5_000 });
  const app = Fastify();
  app.decorateRequest('caller', null as unknown as JWTPayload);

  app.addHook('onRequest', async (request, reply) => {
    const header = request.headers.authorization ?? '';
    const jwt = header.startsWith('Bearer ') ? header.slice('Bearer '.length) : '';
    try {
      const { payload } = await jwtVerify(jwt, jwks, {
        issuer: options.issuer,
        audience: options.audience,
        algorithms: options.algorithms,
        typ: 'at+jwt',
        requiredClaims: ['exp', 'iat', 'sub', 'client_id'],
      });
      request.caller = payload;
    } catch {
      return reply.code(401).header('www-authenticate', 'Bearer error="invalid_token"').send({ error: 'invalid_token' });
    }
  });

  const caller = (payload: JWTPayload) => ({
    sub: payload.sub,
    client_id: payload.client_id,
    scope: payload.scope,
    cnf: payload.cnf,
    exp: payload.exp,
  });
  const hasScope = (payload: JWTPayload, scope: string): boolean => String(payload.scope ?? '').split(' ').includes(scope);

  app.get('/api/accounts', async (request) => ({
    accounts: [{ id: 'acc-001', currency: 'EUR', balance: '1250.00' }],
    verified_caller: caller(request.caller),
  }));

  app.post('/api/transactions', async (request, reply) => {
    if (!hasScope(request.caller, 'transactions')) {
      return reply.code(403).send({ error: 'insufficient_scope', scope: 'transactions' });
    }
    return reply.code(201).send({ id: `tx-${Date.now()}`, status: 'accepted', received: request.body ?? null, verified_caller: caller(request.caller) });
  });
  return app;
}

async function main(): Promise<void> {
  const options: ExampleApiOptions = {
    // Loopback by default: inside the pod only the sidecar can reach it.
    host: process.env.API_HOST ?? '127.0.0.1',
    port: Number(process.env.API_PORT ?? '3000'),
    jwksUrl: process.env.API_JWKS_URL ?? 'http://127.0.0.1:9090/.well-known/jwks.json',
    issuer: process.env.API_JWT_ISSUER ?? 'https://phantom-sidecar.local',
    audience: process.env.API_JWT_AUDIENCE ?? 'https://api.internal',
    algorithms: (process.env.API_JWT_ALG ?? 'ES256').split(','),
  };
  const app = buildExampleApi(options);
  try {
    await app.listen({ host: options.host, port: options.port });
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    process.stderr.write(code === 'EADDRINUSE' ? `example-api: API_PORT: port ${options.port} is already in use\n` : `example-api: ${String(error)}\n`);
    process.exit(2);
  }
  process.stdout.write(`example API on http://${options.host}:${options.port}, trusting JWTs from ${options.jwksUrl}\n`);
  for (const signal of ['SIGTERM', 'SIGINT'] as const) process.once(signal, () => void app.close().then(() => process.exit(0)));
}

if (import.meta.main) await main();
