// The floor the sidecar is measured against: bare Fastify 5 + @fastify/reply-from terminating
// the same mutual TLS and proxying to the same upstream, with no authorization at all.
// BASELINE_HOOKS=1 adds the shape of the sidecar's Fastify integration doing nothing: a request
// id, a decorated request, an onRequest and a preHandler hook, a response header, a close
// listener per request (where the access line is written), and reply-from's request-header,
// response-header and response hooks. What that costs is the floor any sidecar built on
// Fastify + reply-from pays before it checks anything (npm run bench, pass 5).
import { readFileSync } from 'node:fs';
import Fastify from 'fastify';
import replyFrom from '@fastify/reply-from';

const hooked = process.env.BASELINE_HOOKS === '1';
let ids = 0;
const app = Fastify({
  ...(hooked ? { genReqId: () => String((ids += 1)), logger: false, return503OnClosing: false } : {}),
  https: {
    cert: readFileSync(process.env.TLS_CERT ?? ''),
    key: readFileSync(process.env.TLS_KEY ?? ''),
    ca: readFileSync(process.env.TLS_CLIENT_CA ?? ''),
    requestCert: true,
    rejectUnauthorized: true,
  },
});
app.removeAllContentTypeParsers();
app.addContentTypeParser('*', (_request, payload, done) => done(null, payload));
await app.register(replyFrom, { base: process.env.UPSTREAM_URL ?? '', undici: { connections: 128, pipelining: 1 } });
// Hop-by-hop headers stripped on the way back, as any proxy must (reply-from copies them).
const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-authenticate', 'proxy-authorization', 'te', 'trailer', 'transfer-encoding', 'upgrade']);
const withoutHopByHop = (headers: Record<string, unknown>) => Object.fromEntries(Object.entries(headers).filter(([name]) => !HOP_BY_HOP.has(name)));
const hooks = hooked
  ? {
      rewriteRequestHeaders: (_request: unknown, headers: Record<string, unknown>) => withoutHopByHop(headers),
      rewriteHeaders: withoutHopByHop,
      onResponse: (_request: unknown, reply: { send(body: unknown): void }, response: { stream: unknown }) => reply.send(response.stream),
    }
  : { rewriteHeaders: withoutHopByHop };
if (hooked) {
  app.decorateRequest('phantom', null);
  app.addHook('onRequest', (request, reply, done) => {
    reply.header('x-fapi-interaction-id', request.id);
    reply.raw.once('close', () => undefined);
    done();
  });
  app.addHook('preHandler', (_request, _reply, done) => done());
}
app.all('/*', (request, reply) => reply.from(request.url.split('?', 1)[0] ?? '/', hooks as never));
await app.listen({ host: '127.0.0.1', port: Number(process.env.PORT) });
process.stdout.write('ready\n');
// A normal exit on SIGTERM, so that --cpu-prof (BENCH_PROFILE_DIR) writes its profile.
process.once('SIGTERM', () => process.exit(0));
