// Refusals that happen before Fastify has a request: an unparsable request head, a head or
// body that did not arrive in time, a CONNECT. Node hands over only the socket, so the answer
// is written to it directly, through the same error family and with the same JSON body.
import { STATUS_CODES } from 'node:http';
import type { Duplex } from 'node:stream';
import { toErrorResponse, type ChallengeContext, type SidecarError } from '../errors.ts';
import { REALM } from './reply-error.ts';

/** Writes the error as a complete HTTP/1.1 response that closes the connection. */
export function writeRawRefusal(socket: Duplex, error: SidecarError, interactionId: string, context: ChallengeContext | string = REALM): void {
  const response = toErrorResponse(error, context);
  const body = JSON.stringify(response.body);
  const headers = {
    ...response.headers,
    'content-type': 'application/json; charset=utf-8',
    'content-length': String(Buffer.byteLength(body)),
    'x-fapi-interaction-id': interactionId,
    date: new Date().toUTCString(),
    connection: 'close',
  };
  const head = Object.entries(headers).flatMap(([name, value]) => (Array.isArray(value) ? value : [value]).map((one) => `${name}: ${one}\r\n`)).join('');
  if (socket.writable) socket.end(`HTTP/1.1 ${response.status} ${STATUS_CODES[response.status] ?? ''}\r\n${head}\r\n${body}`);
  // A connection in error (a refused renegotiation, a broken TLS record) may never finish
  // ending: it goes soon whatever happens, so that no socket outlives its refusal.
  setTimeout(() => socket.destroy(), RAW_REFUSAL_LINGER_MS).unref();
}

const RAW_REFUSAL_LINGER_MS = 1000;
