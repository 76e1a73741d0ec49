// The injector's HTTPS listener: POST /mutate takes an AdmissionReview and answers one; GET
// /healthz for the kubelet. Plain node:https rather than Fastify: two routes, no hooks, and
// the API server is its only client. Its certificate (from cert-manager) is read again when
// renewed, as the sidecar's is.
import { createServer, type Server } from 'node:https';
import { createSecureContext } from 'node:tls';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import type { WebhookConfig } from '../config/webhook-config.ts';
import { readText } from '../config/env.ts';
import { WatchedFiles } from '../config/watched-files.ts';
import { admissionAnswer, MalformedReview, readTemplate, type InjectionTemplate } from './injection.ts';

// The API server sends at most 3 MiB to a webhook; a Pod is far below that.
const MAX_REVIEW_BYTES = 3 * 1024 * 1024;

function send(response: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  response.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), 'cache-control': 'no-store' });
  response.end(text);
}

function readBody(request: IncomingMessage): Promise<Buffer | undefined> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    request.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > MAX_REVIEW_BYTES) {
        resolve(undefined);
        request.destroy();
        return;
      }
      chunks.push(chunk);
    });
    request.on('end', () => resolve(Buffer.concat(chunks)));
    request.on('error', reject);
  });
}

async function mutate(request: IncomingMessage, response: ServerResponse, template: InjectionTemplate, logger: Logger): Promise<void> {
  const body = await readBody(request);
  if (body === undefined) return send(response, 413, { error: 'request_too_large', error_description: 'the review is larger than 3 MiB' });
  let parsed: unknown;
  try {
    parsed = JSON.parse(body.toString('utf8'));
  } catch {
    return send(response, 400, { error: 'invalid_request', error_description: 'the body is not JSON' });
  }
  try {
    const answer = admissionAnswer(parsed, template);
    const { uid, allowed, patch } = answer.response;
    logger.info({ uid, allowed, injected: patch !== undefined, reason: answer.response.status?.message }, 'admission review');
    send(response, 200, answer);
  } catch (error) {
    if (!(error instanceof MalformedReview)) throw error;
    logger.warn({ problem: error.message }, 'malformed admission review');
    send(response, 400, { error: 'invalid_request', error_description: error.message });
  }
}

export interface Webhook {
  server: Server;
  close(): Promise<void>;
}

export function buildWebhook(config: WebhookConfig, logger: Logger): Webhook {
  const template = (() => {
    try {
      return readTemplate(config.templateText);
    } catch (error) {
      throw new Error(`PHANTOM_WEBHOOK_TEMPLATE: ${config.templatePath} ${(error as Error).message}`);
    }
  })();
  const tlsFiles = () => ({ cert: readText('PHANTOM_WEBHOOK_TLS_CERT', config.tls.certPath), key: readText('PHANTOM_WEBHOOK_TLS_KEY', config.tls.keyPath) });
  const server = createServer({ ...tlsFiles(), minVersion: 'TLSv1.2' }, (request, response) => {
    const path = request.url?.split('?')[0];
    if (request.method === 'GET' && path === '/healthz') return send(response, 200, { status: 'ok' });
    if (request.method !== 'POST' || path !== '/mutate') return send(response, 404, { error: 'not_found', error_description: 'POST /mutate or GET /healthz' });
    mutate(request, response, template, logger).catch((error: unknown) => {
      logger.error({ problem: (error as Error).message }, 'admission review failed');
      if (!response.headersSent) send(response, 500, { error: 'server_error', error_description: 'the review could not be answered' });
    });
  });
  server.requestTimeout = 10_000;
  server.headersTimeout = 5_000;
  const watcher = new WatchedFiles(
    {
      paths: [config.tls.certPath, config.tls.keyPath],
      intervalSeconds: config.reloadIntervalSeconds,
      read: () => {
        const files = tlsFiles();
        // A certificate caught half renewed, or a key of another certificate, throws here and
        // the pair in force stays.
        createSecureContext(files);
        return files;
      },
      changed: (files) => {
        server.setSecureContext({ ...files, minVersion: 'TLSv1.2' });
        logger.info('webhook certificate renewed');
      },
      what: 'the webhook certificate and key',
    },
    logger,
  );
  watcher.start();
  return {
    server,
    close: () =>
      new Promise((resolve) => {
        watcher.stop();
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
