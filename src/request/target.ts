// The request target: what the request asks for, before any credential is looked at: the method, the
// request target and the Host. The API must never see a path that a proxy, a framework or
// a servlet container could resolve differently from the sidecar (`\`, encoded slashes and
// dots, `..;`, `//`), so such targets are refused, not normalised; escapes of unreserved
// characters, which every router decodes the same way, are decoded. The path the sidecar
// checked, forwarded and logged is exactly the path the API receives.
import { InvalidRequest, RequestRejected } from '../errors.ts';
import { normalisedPath } from '../path.ts';

export interface TargetRules {
  allowedMethods: ReadonlySet<string>;
  /** The `Allow` header of a 405: the allowed methods, space-free and comma-separated. */
  allow: string;
  /** Lower-case Host values served; undefined: any. */
  publicHosts: ReadonlySet<string> | undefined;
  /** The path of PHANTOM_UPSTREAM_URL without its trailing slash ("" for "/"). */
  basePath: string;
}

export function targetRules(allowedMethods: readonly string[], publicHosts: readonly string[] | undefined, upstream: URL | undefined): TargetRules {
  return {
    allowedMethods: new Set(allowedMethods),
    allow: allowedMethods.join(', '),
    publicHosts: publicHosts === undefined ? undefined : new Set(publicHosts),
    basePath: upstream === undefined ? '' : upstream.pathname.replace(/\/$/, ''),
  };
}

/** 405 with `Allow` for anything but the configured methods (TRACE and CONNECT never pass). */
export function checkMethod(method: string, rules: TargetRules): void {
  if (!rules.allowedMethods.has(method)) throw new RequestRejected('method_not_allowed', { allow: rules.allow, detail: method.slice(0, 16) });
}

// RFC 3986 §3.3 path characters: unreserved, sub-delims, ":", "@", "/" and %XX escapes.
const PATH_CHARS = /^\/[A-Za-z0-9\-._~!$&'()*+,;=:@/%]*$/;
// The query may carry what browsers and clients leave unescaped ([ ] { } | ^), but no
// controls, spaces, quotes, angle brackets, backslash or fragment.
const QUERY_CHARS = /^[A-Za-z0-9\-._~!$&'()*+,;=:@/?%[\]{}|^]*$/;
const BAD_ESCAPE = /%(?![0-9A-Fa-f]{2})/;
// An encoded slash, backslash, dot or NUL, once or twice encoded (%252e): each is resolved
// differently by different parsers.
const ENCODED_SEPARATOR = /%(?:25)*(?:2f|5c|2e|00)/i;
const ENCODED_NUL = /%(?:25)*00/;

function refuse(detail: string): never {
  throw new InvalidRequest('bad_request_target', detail);
}

/** `%F2` is a well-formed escape but no UTF-8: routers and reply-from (decodeURIComponent) throw on it. */
function decodesAsUtf8(path: string): boolean {
  try {
    decodeURIComponent(path);
    return true;
  } catch {
    return false;
  }
}

/** A `.` or `..` segment, also with servlet path parameters (`..;jsessionid=x`). */
function isDotSegment(segment: string): boolean {
  const name = segment.split(';', 1)[0];
  return name === '.' || name === '..';
}

/**
 * The path the API receives for this origin-form request target (RFC 9112 §3.2.1), or a
 * 400 invalid_request. The query is checked but not part of the result.
 */
export function upstreamPathOf(target: string, rules: Pick<TargetRules, 'basePath'>): string {
  // Absolute form (`GET http://host/x`), asterisk form (`OPTIONS *`) and authority form.
  if (!target.startsWith('/')) refuse('not_origin_form');
  const queryStart = target.indexOf('?');
  const path = queryStart === -1 ? target : target.slice(0, queryStart);
  const query = queryStart === -1 ? '' : target.slice(queryStart + 1);
  if (!PATH_CHARS.test(path)) refuse('path_characters');
  // Every escape rule starts at a `%`: a target without one (most of them) skips those scans.
  const pathEscaped = path.includes('%');
  const queryEscaped = query.includes('%');
  if ((pathEscaped && (BAD_ESCAPE.test(path) || !decodesAsUtf8(path))) || (queryEscaped && BAD_ESCAPE.test(query))) refuse('bad_escape');
  if (pathEscaped && ENCODED_SEPARATOR.test(path)) refuse('encoded_separator');
  if (!QUERY_CHARS.test(query) || (queryEscaped && ENCODED_NUL.test(query))) refuse('query_characters');
  // reply-from refuses these as traversal too; refusing them here keeps one rule and one reason.
  if (path.includes('/..') || path.includes('../')) refuse('dot_segment');
  const segments = path.split('/');
  // segments[0] is the empty string before the leading slash; an empty one after it is `//`,
  // which some routers merge and others read as a scheme-relative URL.
  for (let i = 1; i < segments.length; i += 1) {
    const segment = segments[i] ?? '';
    if (isDotSegment(segment)) refuse('dot_segment');
    if (segment === '' && i < segments.length - 1) refuse('empty_segment');
  }
  return `${rules.basePath}${normalisedPath(path)}`;
}

/** 413 before anything is read when Content-Length already says too much. */
export function checkDeclaredLength(contentLength: string | undefined, max: number): void {
  if (contentLength !== undefined && Number(contentLength) > max) throw new RequestRejected('body_too_large', { detail: 'declared' });
}

/**
 * With PHANTOM_PUBLIC_HOSTS, a Host outside the list is 421 Misdirected Request (RFC 9110
 * §15.5.20), and the checked value may be passed on as X-Forwarded-Host. Without it, the
 * Host is not vouched for: undefined, and no X-Forwarded-Host is sent.
 */
export function checkedHost(host: string | undefined, rules: TargetRules): string | undefined {
  if (rules.publicHosts === undefined) return undefined;
  const normalised = host?.toLowerCase();
  if (normalised === undefined || !rules.publicHosts.has(normalised)) throw new RequestRejected('misdirected_request');
  return normalised;
}
