// A DPoP partner (RFC 9449), as a client library does it: a key pair of its own, a DPoP-bound
// token from the authorization server (authenticated by its certificate), a fresh proof for
// every call. Then two attacks on it: a replayed proof, and a proof made for another URL.
// Exits non-zero if any answer is not the expected one. Settings: CERTS_DIR, AS_URL, SIDECAR_URL.
import { createHash, generateKeyPairSync, randomUUID, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { request } from 'node:https';
import { join } from 'node:path';
import { SignJWT, calculateJwkThumbprint, exportJWK } from 'jose';

const certs = process.env.CERTS_DIR ?? 'certs/out';
const asUrl = process.env.AS_URL ?? 'https://localhost:9443';
const sidecarUrl = process.env.SIDECAR_URL ?? 'https://localhost:8443';
const tty = process.stdout.isTTY === true;
const [bold, dim, green, red, off] = tty ? ['\x1b[1m', '\x1b[2m', '\x1b[32m', '\x1b[31m', '\x1b[0m'] : ['', '', '', '', ''];
let failures = 0;

const heading = (text: string): void => void process.stdout.write(`\n${bold}== ${text} ==${off}\n`);
const sent = (text: string): void => void process.stdout.write(`${dim}  > ${text}${off}\n`);
const note = (text: string): void => void process.stdout.write(`    ${text}\n`);
const pass = (text: string): void => void process.stdout.write(`  ${green}✔ ${text}${off}\n`);
const fail = (text: string): void => {
  failures += 1;
  process.stdout.write(`  ${red}✘ ${text}${off}\n`);
};
const short = (value: string): string => `${value.slice(0, 8)}…(${value.length} chars)`;

const tls = { cert: readFileSync(join(certs, 'partner-a.pem')), key: readFileSync(join(certs, 'partner-a.key')), ca: readFileSync(join(certs, 'ca.pem')) };

interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

function send(url: string, method: string, headers: Record<string, string>, body?: string): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method, headers, ...tls, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

async function proof(key: { privateKey: KeyObject; publicKey: KeyObject }, htm: string, htu: string, token?: string): Promise<string> {
  const claims: Record<string, unknown> = { htm, htu, jti: randomUUID(), iat: Math.floor(Date.now() / 1000) };
  if (token !== undefined) claims.ath = createHash('sha256').update(token).digest('base64url');
  return new SignJWT(claims).setProtectedHeader({ alg: 'ES256', typ: 'dpop+jwt', jwk: await exportJWK(key.publicKey) }).sign(key.privateKey);
}

const key = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const jkt = await calculateJwkThumbprint(await exportJWK(key.publicKey));
heading('DPoP partner: a key pair of its own (RFC 9449), certificate for client authentication only');
note(`DPoP key thumbprint (jkt) ${jkt}`);

heading('1. DPoP-bound token from the authorization server');
const tokenUrl = `${asUrl}/token`;
sent(`POST ${tokenUrl} grant_type=client_credentials client_id=partner-a-dpop  DPoP: <proof htm=POST htu=${tokenUrl}>`);
const issued = await send(tokenUrl, 'POST', { 'content-type': 'application/x-www-form-urlencoded', dpop: await proof(key, 'POST', tokenUrl) }, 'grant_type=client_credentials&client_id=partner-a-dpop&scope=accounts');
const body = JSON.parse(issued.body) as Record<string, unknown>;
const token = typeof body.access_token === 'string' ? body.access_token : '';
if (issued.status === 200 && token !== '' && body.token_type === 'DPoP') {
  note(`token_type=DPoP access_token=${short(token)}`);
  pass('the authorization server bound the token to the DPoP key');
} else {
  fail(`expected a DPoP token, got ${issued.status} ${issued.body}`);
  process.exit(1);
}

const htu = `${sidecarUrl}/api/accounts`;
heading('2. GET /api/accounts with a fresh DPoP proof');
const first = await proof(key, 'GET', htu, token);
sent(`GET ${htu}  Authorization: DPoP ${short(token)}  DPoP: <proof htm=GET htu=${htu} ath=…>`);
const ok = await send(htu, 'GET', { authorization: `DPoP ${token}`, dpop: first });
note(`< ${ok.status}`);
if (ok.status === 200) {
  const seen = (JSON.parse(ok.body) as { verified_caller?: { cnf?: { jkt?: string } } }).verified_caller;
  note(`the API saw cnf.jkt = ${seen?.cnf?.jkt ?? '(none)'}`);
  if (seen?.cnf?.jkt === jkt) pass('the proof checked out and the API got the token\'s DPoP binding');
  else fail('the API did not see the key\'s thumbprint');
} else {
  fail(`expected 200, got ${ok.status}: ${ok.body}`);
}

heading('DPoP attack 1: the same proof again (a replay)');
sent(`GET ${htu}  DPoP: <the proof of step 2>`);
const replay = await send(htu, 'GET', { authorization: `DPoP ${token}`, dpop: first });
note(`< ${replay.status}`);
note(`< WWW-Authenticate: ${String(replay.headers['www-authenticate'])}`);
if (replay.status === 401 && String(replay.headers['www-authenticate']).includes('invalid_dpop_proof')) pass('refused with 401: a proof\'s jti is accepted once');
else fail(`expected 401 invalid_dpop_proof, got ${replay.status}`);

heading('DPoP attack 2: a proof made for another URL');
const other = `${sidecarUrl}/api/payments`;
sent(`GET ${htu}  DPoP: <proof htu=${other}>`);
const elsewhere = await send(htu, 'GET', { authorization: `DPoP ${token}`, dpop: await proof(key, 'GET', other, token) });
note(`< ${elsewhere.status}`);
if (elsewhere.status === 401 && String(elsewhere.headers['www-authenticate']).includes('invalid_dpop_proof')) pass('refused with 401: the proof names another URL (htu)');
else fail(`expected 401 invalid_dpop_proof, got ${elsewhere.status}`);

process.stdout.write(`\n${failures === 0 ? 'dpop-partner: every answer was the expected one' : `dpop-partner: ${failures} unexpected answer(s)`}\n`);
process.exit(failures === 0 ? 0 : 1);
