// The request path: every stage a request meets, in the order it meets them, one line each,
// with no HTTP framework in sight, so that the Fastify proxy and a decision endpoint drive the
// very same checks. `admit` runs what the request head decides; `authorize` what the token's
// answer decides. Any throw is a refusal of the one error family: fail closed.
import type { IncomingHttpHeaders } from 'node:http';
import type { PeerConnection } from '../thumbprint.ts';
import { extractCredential, rejectTokenInForm, rejectTokenInQuery, takeCredential, type AcceptedSchemes } from './credential.ts';
import { addressedUrl } from './dpop.ts';
import { identifyPartner, type PartnerCertificates } from './partner-certificate.ts';
import type { PartnerLimits } from './partner-limits.ts';
import type { RequestAuthorizer } from './authorization.ts';
import { routeRequest, type RoutePolicy, type RouteRule } from './route-policy.ts';
import { releaseAtEnd, type RequestState } from './state.ts';
import { checkDeclaredLength, checkMethod, checkedHost, type TargetRules } from './target.ts';

/** A request as it arrived, in plain terms. */
export interface RequestHead {
  method: string;
  /** The request target as received: path and query. */
  target: string;
  headers: IncomingHttpHeaders;
  /** Every header line apart (two Authorization headers are two). */
  distinct: NodeJS.Dict<string[]>;
  /** The verified TLS connection it came on. */
  connection: PeerConnection;
}

export interface PipelineParts {
  partners: PartnerCertificates;
  target: TargetRules;
  /** The route policy in force (it is re-read on change). */
  policy: () => RoutePolicy;
  metadataRule: RouteRule | undefined;
  schemes: AcceptedSchemes;
  maxBodyBytes: number;
  limits: PartnerLimits;
  authorizer: RequestAuthorizer;
}

export interface RequestPipeline {
  /** The request headers whose every line `admit` reads (`RequestHead.distinct` needs no others). */
  readonly headerNames: ReadonlySet<string>;
  admit(state: RequestState, head: RequestHead): void;
  /**
   * `true` when decided at once (a cached answer with its JWT at hand), else the decision to
   * come. The head was judged by `admit`; only its connection matters here.
   */
  authorize(state: RequestState, connection: PeerConnection, formBody: Buffer | undefined): true | Promise<void>;
}

export function requestPipeline(parts: PipelineParts): RequestPipeline {
  const routing = { target: parts.target, metadataRule: parts.metadataRule };
  return {
    headerNames: new Set(['authorization', 'dpop', ...parts.partners.headerNames]),
    admit(state, head) {
      identifyPartner(state, head.connection, head.distinct, parts);
      checkMethod(head.method, parts.target);
      state.method = head.method;
      state.checkedHost = checkedHost(head.headers.host, parts.target);
      routeRequest(state, head.method, head.target, { ...routing, policy: parts.policy() });
      if (parts.schemes.dpop) state.htu = addressedUrl(state.checkedHost, head.target);
      checkDeclaredLength(head.headers['content-length'], parts.maxBodyBytes);
      releaseAtEnd(state, parts.limits.enter(state.x5t ?? ''));
      rejectTokenInQuery(head.target);
      // A public route: forwarded with no token looked at and no JWT (the access line says so).
      if (state.route?.anonymous === true) return;
      takeCredential(state, extractCredential(head.distinct.authorization, head.distinct.dpop, parts.schemes));
    },
    authorize(state, connection, formBody) {
      if (state.route?.anonymous === true) return true;
      if (formBody !== undefined) rejectTokenInForm(formBody);
      if (parts.authorizer.atOnce(state, connection)) return true;
      return parts.authorizer(state, connection);
    },
  };
}
