// What the pipeline carries for one request from stage to stage. The stages write it; the
// access line and the metrics only read it.
import type { AuthScheme } from '../errors.ts';
import type { RefusalReason } from '../reasons.ts';
import type { CacheOutcome } from '../log.ts';
import type { RouteRule } from '../config/policy.ts';
import type { RequestTrace, UpstreamSpan } from '../tracing/seam.ts';


export interface RequestState {
  /** The request method, as the DPoP proof's htm must name it. */
  method: string;
  /** The access token the credential step took; never logged, never forwarded. */
  token: string | undefined;
  /** The scheme it came with (Bearer, or DPoP with `dpopProof`). */
  scheme: AuthScheme | undefined;
  /** The one DPoP proof JWT of a DPoP request; checked by the DPoP step. */
  dpopProof: string | undefined;
  /** The rule of the route policy this request matched. */
  route: RouteRule | undefined;
  /** x5t#S256 of the partner certificate : public, and what binding is checked against. */
  x5t: string | undefined;
  /** The partner certificate's DER: for the API with PHANTOM_FORWARD_CLIENT_CERT, and the access line's names. */
  partnerDer: (() => Buffer | undefined) | undefined;
  /** The path the API receives (base path included, no query); set once the target is checked. */
  upstreamPath: string | undefined;
  /** The Host header as PHANTOM_PUBLIC_HOSTS vouched for it; undefined without that setting. */
  checkedHost: string | undefined;
  /** The URL the client addressed, without query (a DPoP proof's htu): with a checked Host only. */
  htu: string | undefined;
  /** The upstream JWT, for the proxy. */
  upstreamJwt: string | undefined;
  /** The token's client and subject, once introspected: for the access line. */
  clientId: string | undefined;
  sub: string | undefined;
  cache: CacheOutcome;
  /** Why the request was refused or failed; undefined when it was served. */
  reason: RefusalReason | undefined;
  /** What varies within the reason (an AS status, an error code): logged, never a label. */
  detail: string | undefined;
  /** The status of a response the sidecar could not write through Fastify (a timeout). */
  rawStatus: number | undefined;
  startedAt: number;
  /** Whether the response's end is watched for (its access line and releases). */
  tracked: boolean;
  /** Whether the response is over (sent, or the connection gone). */
  ended: boolean;
  /** What to give back when the response is over: a partner's slot, an upstream slot. */
  atEnd: Array<() => void>;
  /** The request's span, when tracing is on. */
  trace: RequestTrace | undefined;
  upstreamSpan: UpstreamSpan | undefined;
  /** When the call to the API left (performance.now()), and the API's own answer. */
  upstreamStartedAt: number | undefined;
  upstreamStatus: number | undefined;
  upstreamMs: number | undefined;
}

export function newRequestState(): RequestState {
  return {
    method: '',
    token: undefined,
    scheme: undefined,
    dpopProof: undefined,
    route: undefined,
    x5t: undefined,
    partnerDer: undefined,
    upstreamPath: undefined,
    upstreamJwt: undefined,
    clientId: undefined,
    sub: undefined,
    cache: 'none',
    reason: undefined,
    detail: undefined,
    checkedHost: undefined,
    htu: undefined,
    rawStatus: undefined,
    startedAt: performance.now(),
    tracked: false,
    ended: false,
    atEnd: [],
    trace: undefined,
    upstreamSpan: undefined,
    upstreamStartedAt: undefined,
    upstreamStatus: undefined,
    upstreamMs: undefined,
  };
}

/** Runs `release` when the response is over, or at once if it already is. */
export function releaseAtEnd(state: RequestState, release: () => void): void {
  if (state.ended) release();
  else state.atEnd.push(release);
}

/** The response is over: everything held for it is given back, once. */
export function endRequest(state: RequestState): void {
  if (state.ended) return;
  state.ended = true;
  for (const release of state.atEnd) release();
  state.atEnd.length = 0;
}

