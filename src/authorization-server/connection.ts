// Everything the sidecar needs to talk to its authorization server, put together from the
// configuration: where to ask (configured, or discovered), how to authenticate, and how the
// answer is asked for and read.
import { verifiedAgent } from './outbound.ts';
import type { Logger } from 'pino';
import type { Config, ConfigError } from '../config/config.ts';
import type { IntrospectionParts } from './introspection-client.ts';
import { asJwtAnswer, jsonAnswer, type AnswerFormat } from './answer-format.ts';
import { clientAuthentication } from './client-auth.ts';
import { MetadataSource } from './metadata.ts';
import { signedAnswer } from './signed-answer.ts';

export interface AuthorizationServerConnection extends IntrospectionParts {
  ready: () => boolean;
  configurationError: Promise<ConfigError>;
  close(): Promise<void>;
}

export function connectAuthorizationServer(config: Config, logger: Logger): AuthorizationServerConnection {
  const settings = config.introspection;
  const { issuer } = settings;
  const metadata = issuer === undefined ? undefined : new MetadataSource({ ...settings, issuer }, logger);
  const dispatcher = metadata?.dispatcher ?? verifiedAgent({ ca: settings.ca, timeoutMs: settings.timeoutMs });
  const auth = clientAuthentication(settings, config.tls.reloadIntervalSeconds, logger);
  let format: AnswerFormat = jsonAnswer;
  if (config.upstreamToken.mode === 'as-jwt') format = asJwtAnswer;
  else if (settings.response === 'jwt') {
    format = signedAnswer({
      // Configuration refuses a signed answer without an issuer identifier.
      issuer: settings.asIdentifier ?? '',
      clientId: settings.clientId,
      jwksUri: () => settings.jwksUrl ?? metadata?.current()?.jwksUri,
      cooldownSeconds: settings.jwksCooldownSeconds,
      timeoutMs: settings.timeoutMs,
      dispatcher,
    });
  }
  const configurationError = new Promise<ConfigError>((resolve) => metadata?.start(resolve));
  return {
    // A configured URL wins over the metadata's.
    endpoint: () => settings.url ?? metadata?.current()?.introspectionEndpoint,
    auth,
    format,
    ready: () => metadata === undefined || metadata.current() !== undefined,
    configurationError,
    close: async () => {
      auth.close?.();
      await (metadata?.stop() ?? dispatcher.close());
    },
  };
}
