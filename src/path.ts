// Paths in the one form the policy judges and the API receives.

const ESCAPE = /%([0-9A-Fa-f]{2})/g;
// RFC 3986 §2.3 unreserved characters but `.` (an encoded dot is refused above, as a separator).
const UNRESERVED = /^[A-Za-z0-9\-_~]$/;

/**
 * RFC 3986 §6.2.2.1-2: an escape of an unreserved character is that character, and the hex of
 * the others is upper case. The API's router decodes `%74` to `t` before routing, so the
 * policy must judge, and the API receive, the path in that form: else `/accounts/1/%74ransactions`
 * would pass a rule for `/accounts/` and be routed as `/accounts/1/transactions`.
 */
export function normalisedPath(path: string): string {
  if (!path.includes('%')) return path;
  return path.replace(ESCAPE, (escape, hex: string) => {
    const character = String.fromCharCode(Number.parseInt(hex, 16));
    return UNRESERVED.test(character) ? character : escape.toUpperCase();
  });
}
