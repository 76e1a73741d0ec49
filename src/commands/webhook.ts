// `phantom-sidecar webhook`: the injector, from the same image as the sidecar.
import { loadWebhookConfig } from '../config/webhook-config.ts';
import { createLogger } from '../log.ts';
import { buildWebhook } from '../webhook/server.ts';
import { configOrFail, fail } from './exit.ts';

export async function webhook(): Promise<void> {
  const config = configOrFail(() => loadWebhookConfig());
  const logger = createLogger(config.logLevel);
  let injector: ReturnType<typeof buildWebhook>;
  try {
    injector = buildWebhook(config, logger);
  } catch (error) {
    fail((error as Error).message);
  }
  await new Promise<void>((resolve, reject) => {
    injector.server.once('error', reject);
    injector.server.listen(config.port, config.host, resolve);
  }).catch((error: NodeJS.ErrnoException) => fail(`PHANTOM_WEBHOOK_PORT: cannot listen on ${config.host}:${config.port} (${error.code ?? 'error'})`));
  const address = injector.server.address();
  logger.info({ port: typeof address === 'object' && address !== null ? address.port : config.port }, 'phantom-sidecar webhook ready');
  const stop = async (): Promise<void> => {
    await injector.close();
    logger.flush();
    process.exit(0);
  };
  process.once('SIGTERM', () => void stop());
  process.once('SIGINT', () => void stop());
}
