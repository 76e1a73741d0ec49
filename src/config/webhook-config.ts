// Settings of `phantom-sidecar webhook`, the injector: read and checked once, as the sidecar's are.
import type { LogLevel } from './config.ts';
import { ConfigError, EnvReader, readText, refuseUnknownVariables, type Env } from './env.ts';
import { readCertificateFile, parsePrivateKey } from './tls-material.ts';

export interface WebhookConfig {
  host: string;
  port: number;
  tls: { certPath: string; keyPath: string };
  /** The sidecar template's JSON, as the chart renders it into a ConfigMap. */
  templatePath: string;
  templateText: string;
  reloadIntervalSeconds: number;
  logLevel: LogLevel;
}

export function loadWebhookConfig(environment: Env = process.env): WebhookConfig {
  refuseUnknownVariables(environment);
  const env = new EnvReader(environment);
  const certPath = env.required('PHANTOM_WEBHOOK_TLS_CERT');
  const keyPath = env.required('PHANTOM_WEBHOOK_TLS_KEY');
  // Checked now, so a wrong mount stops the start naming the variable.
  readCertificateFile('PHANTOM_WEBHOOK_TLS_CERT', certPath);
  parsePrivateKey('PHANTOM_WEBHOOK_TLS_KEY', readText('PHANTOM_WEBHOOK_TLS_KEY', keyPath));
  const templatePath = env.required('PHANTOM_WEBHOOK_TEMPLATE');
  const templateText = readText('PHANTOM_WEBHOOK_TEMPLATE', templatePath);
  if (templateText.trim() === '') throw new ConfigError('PHANTOM_WEBHOOK_TEMPLATE', `file ${templatePath} is empty`);
  return {
    host: env.optional('PHANTOM_WEBHOOK_HOST') ?? '0.0.0.0',
    port: env.integer('PHANTOM_WEBHOOK_PORT', 9443, 0, 65_535),
    tls: { certPath, keyPath },
    templatePath,
    templateText,
    reloadIntervalSeconds: env.integer('PHANTOM_TLS_RELOAD_INTERVAL_S', 60, 0, 86_400),
    logLevel: env.oneOf<LogLevel>('PHANTOM_LOG_LEVEL', 'info', ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']),
  };
}
