// Envoy's gRPC external authorization (envoy.service.auth.v3.Authorization/Check) on
// PHANTOM_EXT_AUTHZ_GRPC_PORT: the same pipeline as the decision listener, fed from a
// CheckRequest. Envoy's own protos (as @grpc/grpc-js-xds ships them) describe the wire; the
// call is over mTLS, and only a trusted gateway's connection may ask (the partner step refuses
// any other). The partner's certificate is `attributes.source.certificate` (Envoy's
// include_peer_certificate: a URL-encoded PEM), the request `attributes.request.http`.
// Loaded only when the port is configured.
import { X509Certificate, randomUUID } from 'node:crypto';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { loadSync } from '@grpc/proto-loader';
import type { Logger } from 'pino';
import { asSidecarError, toErrorResponse, type ChallengeContext } from '../errors.ts';
import type { RequestHead, RequestPipeline } from '../request/pipeline.ts';
import { endRequest, newRequestState } from '../request/state.ts';
import type { PeerConnection } from '../thumbprint.ts';
import { accessLineOf, type AccessRecorder } from './access.ts';

/** Where the partner certificate of a CheckRequest is put for the partner step: no HTTP header can have this name. */
export const SOURCE_CERTIFICATE = ':source-certificate';

// grpc status codes (google.rpc.Code) an answer uses.
const OK = 0;
const INVALID_ARGUMENT = 3;
const PERMISSION_DENIED = 7;
const UNAVAILABLE = 14;
const UNAUTHENTICATED = 16;
// How many Check calls may be under way at once; past it, RESOURCE_EXHAUSTED at once.
const MAX_IN_FLIGHT = 1024;

interface HttpAttributes {
  method?: string;
  path?: string;
  host?: string;
  headers?: Record<string, string>;
}

interface CheckRequest {
  attributes?: { source?: { certificate?: string }; request?: { http?: HttpAttributes } };
}

type HeaderOption = { header: { key: string; value: string }; append_action: string };

function headerOptions(headers: Record<string, string | string[]>): HeaderOption[] {
  return Object.entries(headers).flatMap(([key, value]) => (Array.isArray(value) ? value : [value]).map((one) => ({ header: { key, value: one }, append_action: 'OVERWRITE_IF_EXISTS_OR_ADD' })));
}

function grpcCodeOf(status: number): number {
  if (status === 401) return UNAUTHENTICATED;
  if (status === 400) return INVALID_ARGUMENT;
  if (status >= 500) return UNAVAILABLE;
  return PERMISSION_DENIED;
}

function protoRoot(): string {
  const require = createRequire(import.meta.url);
  return join(dirname(require.resolve('@grpc/grpc-js-xds/package.json')), 'deps');
}

/** The request a CheckRequest is about, in the pipeline's terms; undefined when it carries none. */
export function headOfCheck(check: CheckRequest, connection: PeerConnection): RequestHead | undefined {
  const http = check.attributes?.request?.http;
  if (http === undefined || typeof http.method !== 'string' || typeof http.path !== 'string') return undefined;
  const headers: Record<string, string> = { ...(http.headers ?? {}) };
  if (typeof http.host === 'string' && http.host !== '') headers.host = http.host;
  const distinct: NodeJS.Dict<string[]> = Object.fromEntries(Object.entries(headers).map(([name, value]) => [name.toLowerCase(), [value]]));
  // Only Envoy's own attribute may name the partner, never a header of the request.
  delete distinct[SOURCE_CERTIFICATE];
  const certificate = check.attributes?.source?.certificate;
  if (typeof certificate === 'string' && certificate !== '') distinct[SOURCE_CERTIFICATE] = [certificate];
  return { method: http.method.toUpperCase(), target: http.path, headers, distinct, connection };
}

export interface ExtAuthzParts {
  pipeline: RequestPipeline;
  challenges: ChallengeContext;
  access: AccessRecorder;
  tls: { cert: string; key: string; clientCa: string };
  jwtHeader: string;
  logger: Logger;
}

export interface ExtAuthzServer {
  port: number;
  close(): Promise<void>;
}

export async function startExtAuthz(host: string, port: number, parts: ExtAuthzParts): Promise<ExtAuthzServer> {
  const root = protoRoot();
  const definition = loadSync('envoy/service/auth/v3/external_auth.proto', {
    includeDirs: ['envoy-api', 'xds', 'googleapis', 'protoc-gen-validate'].map((dir) => join(root, dir)),
    keepCase: true,
    enums: String,
    defaults: false,
    oneofs: true,
  });
  const loaded = grpc.loadPackageDefinition(definition) as unknown as { envoy: { service: { auth: { v3: { Authorization: { service: grpc.ServiceDefinition } } } } } };
  const server = new grpc.Server({ 'grpc.max_concurrent_streams': 256 });
  let inFlight = 0;
  server.addService(loaded.envoy.service.auth.v3.Authorization.service, {
    Check: (call: grpc.ServerUnaryCall<CheckRequest, unknown>, callback: grpc.sendUnaryData<unknown>) => {
      if (inFlight >= MAX_IN_FLIGHT) {
        callback({ code: grpc.status.RESOURCE_EXHAUSTED, details: 'too many checks under way' });
        return;
      }
      inFlight += 1;
      const peer = call.getAuthContext().sslPeerCertificate;
      // The server asked for and verified a client certificate (checkClientCertificate).
      const connection: PeerConnection = { authorized: peer?.raw !== undefined, getPeerX509Certificate: () => (peer?.raw === undefined ? undefined : new X509Certificate(peer.raw)) };
      void decide(call.request, connection, parts).then((answer) => {
        inFlight -= 1;
        callback(null, answer);
      });
    },
  });
  const credentials = grpc.ServerCredentials.createSsl(Buffer.from(parts.tls.clientCa), [{ cert_chain: Buffer.from(parts.tls.cert), private_key: Buffer.from(parts.tls.key) }], true);
  const bound = await new Promise<number>((resolve, reject) => server.bindAsync(`${host}:${port}`, credentials, (error, actual) => (error === null ? resolve(actual) : reject(error))));
  parts.logger.info({ port: bound }, 'gRPC ext_authz listening');
  return { port: bound, close: () => new Promise<void>((resolve) => server.tryShutdown(() => resolve())) };
}

/** One CheckResponse: allowed with the JWT to set upstream, or denied with the proxy's refusal. */
async function decide(check: CheckRequest, connection: PeerConnection, parts: ExtAuthzParts): Promise<unknown> {
  const state = newRequestState();
  const interactionId = randomUUID();
  const head = headOfCheck(check, connection);
  let sentStatus = 200;
  try {
    if (head === undefined) throw asSidecarError({ statusCode: 400, code: 'no_http_request' });
    parts.pipeline.admit(state, head);
    const decided = parts.pipeline.authorize(state, head.connection, undefined);
    if (decided !== true) await decided;
    const headers: Record<string, string> = { 'x-fapi-interaction-id': interactionId };
    if (state.upstreamJwt !== undefined) headers[parts.jwtHeader] = parts.jwtHeader === 'authorization' ? `Bearer ${state.upstreamJwt}` : state.upstreamJwt;
    // The opaque token never goes on: replaced by the JWT, or, on an anonymous route, removed.
    const remove = state.upstreamJwt === undefined && parts.jwtHeader === 'authorization' ? ['dpop', 'authorization'] : ['dpop'];
    return { status: { code: OK }, ok_response: { headers: headerOptions(headers), headers_to_remove: remove } };
  } catch (thrown) {
    const refusal = asSidecarError(thrown);
    state.reason = refusal.reason;
    state.detail = refusal.detail;
    const response = toErrorResponse(refusal, { ...parts.challenges, presented: state.scheme });
    sentStatus = response.status;
    const headers = { ...response.headers, 'content-type': 'application/json', 'x-fapi-interaction-id': interactionId };
    return {
      status: { code: grpcCodeOf(response.status), message: refusal.reason },
      denied_response: { status: { code: response.status }, headers: headerOptions(headers), body: JSON.stringify(response.body) },
    };
  } finally {
    endRequest(state);
    parts.access.record(accessLineOf({ interactionId, method: head?.method ?? '-', rawUrl: head?.target ?? '-', sentStatus }, state));
  }
}
