// A bound on calls in flight to the authorization server, whoever causes them: past
// PHANTOM_MAX_CONCURRENT_INTROSPECTIONS a request is answered 503 at once instead of queueing
// behind the AS, and the AS is shielded from a burst the sidecar could otherwise amplify.
import { AuthorizationServerUnavailable } from '../errors.ts';
import type { Introspection, Introspector } from './answer.ts';

export class IntrospectionCapacity implements Introspector {
  readonly #inner: Introspector;
  readonly #max: number;
  #inFlight = 0;

  /** Told of each call's duration and outcome, for the metrics. */
  observe: (seconds: number, outcome: 'answered' | 'failed') => void = () => undefined;
  /** Told of each call that gave no usable answer (the capacity refusal included), for the operator. */
  failed: (error: unknown) => void = () => undefined;

  constructor(inner: Introspector, max: number) {
    this.#inner = inner;
    this.#max = max;
  }

  async introspect(token: string): Promise<Introspection> {
    if (this.#inFlight >= this.#max) {
      const refusal = new AuthorizationServerUnavailable('as_capacity');
      this.failed(refusal);
      throw refusal;
    }
    this.#inFlight += 1;
    const started = performance.now();
    try {
      const answer = await this.#inner.introspect(token);
      this.observe((performance.now() - started) / 1000, 'answered');
      return answer;
    } catch (error) {
      this.observe((performance.now() - started) / 1000, 'failed');
      this.failed(error);
      throw error;
    } finally {
      this.#inFlight -= 1;
    }
  }

  get inFlight(): number {
    return this.#inFlight;
  }

  close(): Promise<void> {
    return this.#inner.close();
  }
}
