// RFC 9728 OAuth 2.0 Protected Resource Metadata: what a client needs to know to call this API
// (which AS, which scopes, which sender constraints), served without a token on the mTLS
// listener and on the admin listener, and named in every WWW-Authenticate challenge.
import type { Config } from '../config/config.ts';
import { acceptedSchemes } from '../request/credential.ts';

const WELL_KNOWN = '/.well-known/oauth-protected-resource';

/** RFC 9728 §3.1: the well-known path goes between the host and the resource's own path. */
export function resourceMetadataPath(resource: string): string {
  const path = new URL(resource).pathname;
  return path === '/' ? WELL_KNOWN : `${WELL_KNOWN}${path.replace(/\/$/, '')}`;
}

export function resourceMetadataUrl(resource: string): string {
  return `${new URL(resource).origin}${resourceMetadataPath(resource)}`;
}

/** The metadata document; members with nothing to say are left out (RFC 9728 §2: no empty arrays). */
export function resourceMetadata(config: Pick<Config, 'resource' | 'introspection' | 'senderConstraints' | 'requireBinding' | 'dpop'>, scopes: readonly string[]): Record<string, unknown> {
  const schemes = acceptedSchemes(config);
  const document: Record<string, unknown> = { resource: config.resource };
  if (config.introspection.issuer !== undefined) document.authorization_servers = [config.introspection.issuer];
  if (scopes.length > 0) document.scopes_supported = [...new Set(scopes)];
  document.bearer_methods_supported = ['header'];
  document.tls_client_certificate_bound_access_tokens = config.senderConstraints.mtls;
  // Required only where no Bearer token of any kind is accepted.
  document.dpop_bound_access_tokens_required = schemes.dpop && !schemes.bearer;
  if (config.senderConstraints.dpop) document.dpop_signing_alg_values_supported = [...config.dpop.algs];
  return document;
}
