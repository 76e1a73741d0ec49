// nginx (Debian's package) as a bank's gateway in front of the sidecar in decision mode: it terminates
// the partner's mTLS and asks the sidecar in decision mode over mTLS with its own client
// certificate (auth_request), then forwards to the API with the JWT it was given.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect } from 'node:net';
import { freePort } from '../ports.ts';

export function nginxAvailable(): boolean {
  return spawnSync('nginx', ['-v'], { stdio: 'ignore' }).status === 0;
}

export const NGINX_MISSING = 'nginx is not installed (Debian package nginx): the gateway tests need it; .ci/run installs it';

export interface GatewaySettings {
  /** Without the auth_request: nginx alone, as the benchmark's baseline. */
  alone?: boolean;
  /** PEM paths of the gateway's server certificate and key, the partner CA, and its own client identity. */
  serverCert: string;
  serverKey: string;
  partnerCa: string;
  clientCert: string;
  clientKey: string;
  /** The sidecar's decision listener and the API. */
  sidecarPort: number;
  upstreamUrl: string;
}

export interface RunningNginx {
  port: number;
  errors(): string;
  stop(): Promise<void>;
}

/** The auth_request configuration the README shows, with this test's ports and files. */
export function gatewayConfig(settings: GatewaySettings, dir: string, port: number): string {
  return `daemon off;
master_process off;
error_log ${dir}/error.log warn;
pid ${dir}/nginx.pid;
events {}
http {
  access_log off;
  client_body_temp_path ${dir}/body;
  proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;
  # Kept-alive mTLS connections to the sidecar: without them every subrequest is a handshake.
  upstream phantom_sidecar {
    server 127.0.0.1:${settings.sidecarPort};
    keepalive 256;
  }
  server {
    listen 127.0.0.1:${port} ssl;
    ssl_certificate ${settings.serverCert};
    ssl_certificate_key ${settings.serverKey};
    ssl_client_certificate ${settings.partnerCa};
    ssl_verify_client on;

    location / {
${settings.alone === true ? '' : `      auth_request /_phantom;
      auth_request_set $phantom_jwt $upstream_http_authorization;
      proxy_set_header Authorization $phantom_jwt;
      proxy_set_header DPoP "";
`}      proxy_pass ${settings.upstreamUrl};
    }

    location = /_phantom {
      internal;
      proxy_pass https://phantom_sidecar/decide;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_pass_request_body off;
      proxy_set_header Content-Length "";
      proxy_set_header Host $http_host;
      proxy_set_header X-Original-Method $request_method;
      proxy_set_header X-Original-URI $request_uri;
      proxy_set_header X-SSL-Client-Cert $ssl_client_escaped_cert;
      proxy_ssl_certificate ${settings.clientCert};
      proxy_ssl_certificate_key ${settings.clientKey};
      proxy_ssl_trusted_certificate ${settings.partnerCa};
      proxy_ssl_verify on;
      proxy_ssl_name localhost;
    }
  }
}
`;
}

/** @param prefix a command to run nginx under (the benchmark pins it with taskset) */
export async function startNginx(settings: GatewaySettings, prefix: readonly string[] = [], listenPort?: number): Promise<RunningNginx & { pid: number }> {
  const dir = mkdtempSync(join(tmpdir(), 'phantom-nginx-'));
  for (const sub of ['body', 'proxy', 'fastcgi', 'uwsgi', 'scgi']) mkdirSync(join(dir, sub));
  const port = listenPort ?? (await freePort());
  const conf = join(dir, 'nginx.conf');
  writeFileSync(conf, gatewayConfig(settings, dir, port));
  const [command, ...args] = [...prefix, 'nginx', '-p', dir, '-c', conf];
  const child: ChildProcess = spawn(command ?? 'nginx', args, { stdio: 'ignore' });
  const errors = (): string => {
    try {
      return readFileSync(join(dir, 'error.log'), 'utf8');
    } catch {
      return '';
    }
  };
  for (let attempt = 0; attempt < 100; attempt += 1) {
    if (child.exitCode !== null) throw new Error(`nginx exited: ${errors()}`);
    const up = await new Promise<boolean>((resolve) => {
      const socket = connect(port, '127.0.0.1', () => {
        socket.destroy();
        resolve(true);
      });
      socket.on('error', () => resolve(false));
    });
    if (up) break;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return {
    port,
    pid: child.pid ?? 0,
    errors,
    stop: () => new Promise<void>((resolve) => {
      if (child.exitCode !== null) {
        resolve();
        return;
      }
      child.once('exit', () => resolve());
      child.kill('SIGTERM');
    }),
  };
}
