// Property-based tests (fast-check): random input to the token extractor, the path rules,
// the header filter and the introspection parser either passes for a stated reason or is
// refused through the error family; it never slips through altered, and never crashes.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { AuthorizationServerUnavailable, InvalidRequest, MissingCredentials, SidecarError } from '../../src/errors.ts';
import { parseIntrospectionJson } from '../../src/introspection/answer.ts';
import { isSidecarOnly, upstreamRequestHeaders } from '../../src/http/proxy.ts';
import { upstreamPathOf } from '../../src/request/target.ts';
import { MAX_TOKEN_BYTES, extractBearerToken } from '../../src/request/credential.ts';

const RUNS = { numRuns: 2000 };

// Characters that matter to path parsers, weighted towards the dangerous ones.
const pathChar = fc.oneof(
  { weight: 6, arbitrary: fc.constantFrom('/', '.', '%', '\\', ';', '?', '#', ' ', '"', '@', ':', '&', '=', '+', '~', '_', '-', '*', '\u0000', '\t', 'é') },
  { weight: 6, arbitrary: fc.constantFrom('2', 'e', 'E', 'f', 'F', '5', 'c', 'C', '0', 'a') },
  { weight: 1, arbitrary: fc.string({ minLength: 1, maxLength: 1 }) },
);
const target = fc.array(pathChar, { maxLength: 40 }).map((chars) => chars.join(''));
const slashTarget = target.map((rest) => `/${rest}`);

test('path rules: a target either is refused as bad_request_target, or is forwarded exactly as any URL parser would read it, unreserved escapes decoded', () => {
  fc.assert(
    fc.property(fc.oneof(target, slashTarget), fc.constantFrom('', '/v1', '/api/v2'), (raw, basePath) => {
      let path: string;
      try {
        path = upstreamPathOf(raw, { basePath });
      } catch (error) {
        assert.ok(error instanceof InvalidRequest && error.reason === 'bad_request_target', String(error));
        return;
      }
      const rawPath = raw.split('?', 1)[0] ?? '';
      // RFC 3986 §6.2.2: the same path, its unreserved escapes decoded and the others' hex upper case.
      assert.equal(decodeURIComponent(path), decodeURIComponent(`${basePath}${rawPath}`));
      assert.ok(!/%(?:[46][1-9A-F]|[57][0-9A]|3[0-9]|2D|5F|7E)/i.test(path), `an unreserved escape left in ${path}`);
      assert.ok(!/%[0-9A-F]?[a-f]/.test(path), `lower-case hex left in ${path}`);
      // What undici, reply-from and the API's router see: the same path, not a resolved one.
      assert.equal(new URL(path, 'http://api.internal').pathname, path);
      assert.equal(new URL(`.${path}`, `http://api.internal${basePath}/`).pathname.startsWith(basePath), true);
      assert.doesNotThrow(() => decodeURIComponent(path));
      assert.ok(!decodeURIComponent(path).split('/').some((segment) => segment === '..' || segment === '.'));
      assert.ok(!path.includes('\\') && !path.includes('//'));
    }),
    RUNS,
  );
});

test('token extractor: a token comes back only as RFC 6750 allows it; anything else is a 400 or 401 of the family', () => {
  const headerValue = fc.oneof(
    fc.string({ maxLength: 60 }),
    fc.string({ maxLength: 60 }).map((token) => `Bearer ${token}`),
    fc.constantFrom('Bearer', 'bearer  abc', 'BEARER abc==', 'Bearer a=b', 'Bearer ' + 'x'.repeat(MAX_TOKEN_BYTES + 1), 'DPoP abc', 'Basic abc'),
  );
  fc.assert(
    fc.property(fc.array(headerValue, { maxLength: 3 }), (values) => {
      let token: string;
      try {
        token = extractBearerToken(values.length === 0 ? undefined : values);
      } catch (error) {
        assert.ok(error instanceof InvalidRequest || error instanceof MissingCredentials, String(error));
        return;
      }
      assert.equal(values.length, 1);
      assert.match(token, /^[A-Za-z0-9\-._~+/]+=*$/);
      assert.ok(Buffer.byteLength(token) <= MAX_TOKEN_BYTES);
      assert.match(values[0] ?? '', new RegExp(`^bearer\\s+${token.replace(/[.+/=~-]/g, '\\$&')}$`, 'i'));
    }),
    RUNS,
  );
});

test('header filter: whatever the client sends, the API gets the sidecar\'s credentials and no identity header of the client\'s', () => {
  const name = fc.oneof(
    fc.constantFrom('authorization', 'x-forwarded-for', 'x-forwarded-host', 'forwarded', 'client-cert', 'x-client-cert-dn', 'x-ssl-client-verify', 'x-fapi-interaction-id', 'connection', 'transfer-encoding', 'x_forwarded_for', 'x-authenticated-user', 'x-consumer-id', 'x-amzn-oidc-data', 'x-ms-client-principal-id', 'true-client-ip', 'x-original-url', 'cookie', 'dpop', 'accept', 'content-type', 'x-custom'),
    fc.stringMatching(/^[a-z][a-z0-9_-]{0,20}$/),
  );
  fc.assert(
    fc.property(fc.dictionary(name, fc.string({ maxLength: 20 })), fc.boolean(), (client, forwardCookies) => {
      const headers = upstreamRequestHeaders(client, { jwt: 'J', interactionId: 'I', clientIp: '192.0.2.1', checkedHost: undefined, forwardCookies });
      assert.equal(headers.authorization, 'Bearer J');
      assert.equal(headers['x-fapi-interaction-id'], 'I');
      assert.equal(headers['x-forwarded-for'], '192.0.2.1');
      assert.equal(headers['x-forwarded-host'], undefined);
      const own = new Set(['authorization', 'x-fapi-interaction-id', 'x-forwarded-for', 'x-forwarded-proto']);
      for (const key of Object.keys(headers)) {
        if (own.has(key)) continue;
        assert.ok(!isSidecarOnly(key), key);
        assert.ok(!key.includes('_'), key);
        assert.ok(!['connection', 'transfer-encoding', 'keep-alive', 'te', 'upgrade', 'expect'].includes(key), key);
        assert.equal(headers[key], client[key]);
      }
      if (!forwardCookies) assert.equal(headers.cookie, undefined);
    }),
    RUNS,
  );
});

test('introspection parser: active only for the boolean true, inactive only for the boolean false, every other shape the AS\'s fault', () => {
  const answer = fc.oneof(
    fc.jsonValue(),
    fc.record({ active: fc.jsonValue() }, { requiredKeys: [] }),
    fc.record({
      active: fc.constantFrom(true, false, 'true', 1, null),
      exp: fc.oneof(fc.integer(), fc.string(), fc.constant(undefined)),
      scope: fc.oneof(fc.string(), fc.integer(), fc.constant(undefined)),
      aud: fc.oneof(fc.string(), fc.array(fc.string()), fc.array(fc.integer()), fc.constant(undefined)),
      cnf: fc.oneof(fc.record({ 'x5t#S256': fc.oneof(fc.string(), fc.integer()) }), fc.string(), fc.constant(undefined)),
      token_type: fc.oneof(fc.string(), fc.boolean(), fc.constant(undefined)),
    }),
  );
  fc.assert(
    fc.property(answer, (body) => {
      let result;
      try {
        result = parseIntrospectionJson(JSON.parse(JSON.stringify(body ?? null)));
      } catch (error) {
        assert.ok(error instanceof AuthorizationServerUnavailable && error.reason === 'as_malformed_response', String(error));
        assert.ok(error instanceof SidecarError);
        return;
      }
      const active = (body as { active?: unknown }).active;
      if (result.active) {
        assert.equal(active, true);
        for (const [key, value] of Object.entries(result.claims)) {
          if (key === 'exp' || key === 'nbf' || key === 'iat') assert.equal(typeof value, 'number');
          if (key === 'scope' || key === 'token_type' || key === 'sub' || key === 'client_id' || key === 'iss') assert.equal(typeof value, 'string');
        }
      } else {
        assert.equal(active, false);
      }
    }),
    RUNS,
  );
});
