// The injection decision of the mutating admission webhook: given an AdmissionReview of a Pod,
// the RFC 6902 JSON Patch that adds the sidecar (a native sidecar: an init container with
// restartPolicy Always), its volumes and its per-pod settings. No framework and no I/O here:
// the server hands in the parsed review and the template, and writes out what this returns.
//
// The template (the sidecar container and its volumes) is rendered by the Helm chart from the
// same helper as the chart's own Deployment, so there is one definition of the sidecar.

export const INJECT_ANNOTATION = 'phantom-sidecar.io/inject';
/** Set on every pod this webhook changed (as Vault's injector does): the second pass is a no-op. */
export const STATUS_ANNOTATION = 'phantom-sidecar.io/status';
/** The API's port on the pod's loopback; the sidecar forwards to http://127.0.0.1:<port>. */
export const UPSTREAM_PORT_ANNOTATION = 'phantom-sidecar.io/upstream-port';
/** A ConfigMap of PHANTOM_* settings for this pod, read after the chart's (so it wins). */
export const CONFIG_ANNOTATION = 'phantom-sidecar.io/config';
/** The Secret holding this workload's server certificate (tls.crt, tls.key). */
export const TLS_SECRET_ANNOTATION = 'phantom-sidecar.io/tls-secret';

export const SIDECAR_NAME = 'phantom-sidecar';
const TLS_VOLUME = 'phantom-server-tls';

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
type JsonObject = { [key: string]: Json };

export interface PatchOperation {
  op: 'add' | 'replace';
  path: string;
  value: Json;
}

export interface InjectionTemplate {
  /** The sidecar container; its name must be SIDECAR_NAME. */
  container: JsonObject;
  volumes: JsonObject[];
}

export interface AdmissionResponse {
  uid: string;
  allowed: boolean;
  patchType?: 'JSONPatch';
  /** base64 of the JSON Patch, as the API server expects it. */
  patch?: string;
  status?: { code: number; message: string };
  warnings?: string[];
}

export interface AdmissionReviewOut {
  apiVersion: 'admission.k8s.io/v1';
  kind: 'AdmissionReview';
  response: AdmissionResponse;
}

/** A review we cannot read: answered with HTTP 400 (no uid to answer under). */
export class MalformedReview extends Error {
  override name = 'MalformedReview';
}

const UID = /^[A-Za-z0-9-]{1,128}$/;
const PORT = /^[1-9]\d{0,4}$/;
// RFC 1123 DNS subdomain: what a ConfigMap or Secret name may be.
const OBJECT_NAME = /^[a-z0-9](?:[a-z0-9.-]{0,251}[a-z0-9])?$/;

function isObject(value: unknown): value is JsonObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function objectAt(parent: JsonObject, key: string): JsonObject | undefined {
  const value = parent[key];
  return isObject(value) ? value : undefined;
}

function arrayAt(parent: JsonObject, key: string): Json[] | undefined {
  const value = parent[key];
  return Array.isArray(value) ? value : undefined;
}

/** RFC 6901: `~` and `/` escaped in a path segment. */
function pointerSegment(segment: string): string {
  return segment.replaceAll('~', '~0').replaceAll('/', '~1');
}

interface ReadReview {
  uid: string;
  pod: JsonObject;
}

/** The parts of an AdmissionReview v1 this webhook needs, or MalformedReview. */
export function readReview(body: unknown): ReadReview {
  if (!isObject(body) || body.apiVersion !== 'admission.k8s.io/v1' || body.kind !== 'AdmissionReview') {
    throw new MalformedReview('not an admission.k8s.io/v1 AdmissionReview');
  }
  const request = objectAt(body, 'request');
  if (request === undefined) throw new MalformedReview('the review has no request');
  const uid = request.uid;
  if (typeof uid !== 'string' || !UID.test(uid)) throw new MalformedReview('the request has no valid uid');
  const pod = objectAt(request, 'object');
  if (pod === undefined || pod.kind !== 'Pod') throw new MalformedReview('the request carries no Pod');
  const spec = objectAt(pod, 'spec');
  if (spec === undefined || !Array.isArray(spec.containers)) throw new MalformedReview('the Pod has no spec.containers');
  return { uid, pod };
}

function annotationsOf(pod: JsonObject): JsonObject {
  return objectAt(pod, 'metadata') === undefined ? {} : (objectAt(objectAt(pod, 'metadata')!, 'annotations') ?? {});
}

function wantsInjection(annotations: JsonObject): boolean {
  return typeof annotations[INJECT_ANNOTATION] === 'string' && ['true', 'yes', 'enabled'].includes(annotations[INJECT_ANNOTATION].toLowerCase());
}

function hasSidecar(spec: JsonObject): boolean {
  const named = (list: Json[] | undefined) => (list ?? []).some((container) => isObject(container) && container.name === SIDECAR_NAME);
  return named(arrayAt(spec, 'initContainers')) || named(arrayAt(spec, 'containers'));
}

/** The sidecar for this pod: the template with the pod's own annotations applied. */
function sidecarFor(template: InjectionTemplate, annotations: JsonObject, refusals: string[]): { container: JsonObject; volumes: JsonObject[] } {
  const container: JsonObject = structuredClone(template.container);
  let volumes: JsonObject[] = structuredClone(template.volumes);
  const port = annotations[UPSTREAM_PORT_ANNOTATION];
  if (port !== undefined) {
    if (typeof port === 'string' && PORT.test(port) && Number(port) <= 65_535) {
      const env = arrayAt(container, 'env') ?? [];
      container.env = [...env.filter((entry) => !(isObject(entry) && entry.name === 'PHANTOM_UPSTREAM_URL')), { name: 'PHANTOM_UPSTREAM_URL', value: `http://127.0.0.1:${port}` }];
    } else {
      refusals.push(`${UPSTREAM_PORT_ANNOTATION} must be a port number`);
    }
  }
  const config = annotations[CONFIG_ANNOTATION];
  if (config !== undefined) {
    if (typeof config === 'string' && OBJECT_NAME.test(config)) {
      container.envFrom = [...(arrayAt(container, 'envFrom') ?? []), { configMapRef: { name: config } }];
    } else {
      refusals.push(`${CONFIG_ANNOTATION} must name a ConfigMap`);
    }
  }
  const tlsSecret = annotations[TLS_SECRET_ANNOTATION];
  if (tlsSecret !== undefined) {
    if (typeof tlsSecret === 'string' && OBJECT_NAME.test(tlsSecret)) {
      volumes = volumes.map((volume) => (volume.name === TLS_VOLUME ? { name: TLS_VOLUME, secret: { secretName: tlsSecret } } : volume));
    } else {
      refusals.push(`${TLS_SECRET_ANNOTATION} must name a Secret`);
    }
  }
  return { container, volumes };
}

/** The JSON Patch that injects the sidecar, or the refusals that stop the pod. */
export function injectionPatch(pod: JsonObject, template: InjectionTemplate): { patch: PatchOperation[]; refusals: string[] } {
  const spec = objectAt(pod, 'spec')!;
  const annotations = annotationsOf(pod);
  if (!wantsInjection(annotations) || annotations[STATUS_ANNOTATION] === 'injected' || hasSidecar(spec)) return { patch: [], refusals: [] };
  const refusals: string[] = [];
  const { container, volumes } = sidecarFor(template, annotations, refusals);
  if (refusals.length > 0) return { patch: [], refusals };
  const taken = new Set((arrayAt(spec, 'volumes') ?? []).map((volume) => (isObject(volume) ? volume.name : undefined)));
  const clash = volumes.find((volume) => taken.has(volume.name));
  if (clash !== undefined) return { patch: [], refusals: [`the pod already has a volume named ${String(clash.name)}`] };

  const patch: PatchOperation[] = [];
  if (arrayAt(spec, 'initContainers') === undefined) patch.push({ op: 'add', path: '/spec/initContainers', value: [container] });
  else patch.push({ op: 'add', path: '/spec/initContainers/-', value: container });
  if (arrayAt(spec, 'volumes') === undefined) patch.push({ op: 'add', path: '/spec/volumes', value: volumes });
  else for (const volume of volumes) patch.push({ op: 'add', path: '/spec/volumes/-', value: volume });
  if (objectAt(pod, 'metadata') === undefined) patch.push({ op: 'add', path: '/metadata', value: { annotations: { [STATUS_ANNOTATION]: 'injected' } } });
  else if (objectAt(objectAt(pod, 'metadata')!, 'annotations') === undefined) patch.push({ op: 'add', path: '/metadata/annotations', value: { [STATUS_ANNOTATION]: 'injected' } });
  else patch.push({ op: 'add', path: `/metadata/annotations/${pointerSegment(STATUS_ANNOTATION)}`, value: 'injected' });
  return { patch, refusals: [] };
}

/** The whole answer to one review: allowed with a patch, allowed untouched, or refused (403). */
export function admissionAnswer(body: unknown, template: InjectionTemplate): AdmissionReviewOut {
  const { uid, pod } = readReview(body);
  const { patch, refusals } = injectionPatch(pod, template);
  const response: AdmissionResponse =
    refusals.length > 0
      ? { uid, allowed: false, status: { code: 403, message: `phantom-sidecar injection: ${refusals.join('; ')}` } }
      : patch.length === 0
        ? { uid, allowed: true }
        : { uid, allowed: true, patchType: 'JSONPatch', patch: Buffer.from(JSON.stringify(patch)).toString('base64') };
  return { apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', response };
}

/** The template file the chart mounts, checked once at start-up. */
export function readTemplate(text: string): InjectionTemplate {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new Error('is not JSON');
  }
  if (!isObject(parsed)) throw new Error('is not a JSON object');
  const container = objectAt(parsed, 'container');
  const volumes = arrayAt(parsed, 'volumes');
  if (container === undefined || container.name !== SIDECAR_NAME) throw new Error(`has no container named ${SIDECAR_NAME}`);
  if (volumes === undefined || !volumes.every(isObject)) throw new Error('has no list of volumes');
  return { container, volumes: volumes as JsonObject[] };
}
