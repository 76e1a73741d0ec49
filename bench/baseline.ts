// The floor the sidecar is measured against: bare Fastify 5 + @fastify/reply-from terminating
// the same mutual TLS and proxying to the same upstream, with no authorization at all.
import { readFileSync } from 'node:fs';
import Fastify from 'fastify';
import replyFrom from '@fastify/reply-from';

const app = Fastify({
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
const hooks = {
  rewriteHeaders: (headers: Record<string, unknown>) => Object.fromEntries(Object.entries(headers).filter(([name]) => !HOP_BY_HOP.has(name))),
};
app.all('/*', (request, reply) => reply.from(request.url.split('?', 1)[0] ?? '/', hooks as never));
await app.listen({ host: '127.0.0.1', port: Number(process.env.PORT) });
process.stdout.write('ready\n');
