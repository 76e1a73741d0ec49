// Requests written byte for byte on a partner's mTLS connection: for the request targets,
// methods and slow senders that a well-behaved HTTP client refuses to produce.
import { connect, type TLSSocket } from 'node:tls';
import type { Identity, Pki } from './pki.ts';

export interface RawResponse {
  status: number;
  headers: Record<string, string>;
  body: string;
  json: Record<string, unknown>;
}

export function openTls(port: number, identity: Identity, pki: Pki): Promise<TLSSocket> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port, ca: pki.ca, servername: 'localhost', cert: identity.cert, key: identity.key }, () => resolve(socket));
    socket.once('error', reject);
  });
}

/** The first complete response in `text`, or undefined while it is still arriving. */
export function parseResponse(text: string): RawResponse | undefined {
  const end = text.indexOf('\r\n\r\n');
  if (end === -1) return undefined;
  const [statusLine = '', ...lines] = text.slice(0, end).split('\r\n');
  const headers: Record<string, string> = {};
  for (const line of lines) {
    const colon = line.indexOf(':');
    headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
  }
  const length = Number(headers['content-length'] ?? 0);
  const body = text.slice(end + 4);
  if (headers['transfer-encoding'] === undefined && Buffer.byteLength(body) < length) return undefined;
  let json: Record<string, unknown> = {};
  try {
    json = JSON.parse(body.slice(0, length || undefined)) as Record<string, unknown>;
  } catch {
    // not JSON
  }
  return { status: Number(statusLine.split(' ')[1]), headers, body, json };
}

/** Reads from the socket until a complete response has arrived (or the socket closes). */
export function readResponse(socket: TLSSocket, timeoutMs = 5000): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    let text = '';
    const timer = setTimeout(() => finish(new Error(`no complete response within ${timeoutMs} ms: ${JSON.stringify(text.slice(0, 200))}`)), timeoutMs);
    const onData = (chunk: Buffer): void => {
      text += chunk.toString('latin1');
      const response = parseResponse(text);
      if (response !== undefined) finish(undefined, response);
    };
    const onClose = (): void => {
      const response = parseResponse(text);
      finish(response === undefined ? new Error(`closed without a response: ${JSON.stringify(text.slice(0, 200))}`) : undefined, response);
    };
    function finish(error: Error | undefined, response?: RawResponse): void {
      clearTimeout(timer);
      socket.off('data', onData);
      socket.off('close', onClose);
      if (error !== undefined) reject(error);
      else resolve(response as RawResponse);
    }
    socket.on('data', onData);
    socket.once('close', onClose);
  });
}

/** One request written as given on a new connection, and its response. */
export async function rawRequest(port: number, identity: Identity, pki: Pki, head: string, body = ''): Promise<RawResponse> {
  const socket = await openTls(port, identity, pki);
  try {
    const response = readResponse(socket);
    socket.write(`${head}\r\n\r\n${body}`);
    return await response;
  } finally {
    socket.destroy();
  }
}

/** Milliseconds until the server closes this socket, or undefined if it is still open after `limitMs`. */
export function closedWithin(socket: TLSSocket, limitMs: number): Promise<number | undefined> {
  const started = Date.now();
  return new Promise((resolve) => {
    if (socket.destroyed) {
      resolve(0);
      return;
    }
    const timer = setTimeout(() => resolve(undefined), limitMs);
    socket.once('close', () => {
      clearTimeout(timer);
      resolve(Date.now() - started);
    });
    socket.on('data', () => undefined);
    socket.on('error', () => undefined);
  });
}
