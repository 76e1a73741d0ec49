// FAPI `x-fapi-interaction-id`: echoed on every response (errors included) and logged.
import { randomUUID } from 'node:crypto';
import type { IncomingMessage } from 'node:http';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/**
 * The client's value when it is one RFC 4122 UUID, else a new one, so whatever is echoed and
 * logged has a known, harmless shape.
 */
export function interactionIdOf(request: IncomingMessage): string {
  // Node joins repeated x- headers with ", ", which no UUID matches: two values get a new id.
  const value = request.headers['x-fapi-interaction-id'];
  return typeof value === 'string' && UUID.test(value) ? value : randomUUID();
}
