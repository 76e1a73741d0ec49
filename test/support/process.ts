// The sidecar as its own process (`node src/main.ts`), as Kubernetes runs it.
import { spawn, type ChildProcess } from 'node:child_process';
import { freePort } from './ports.ts';

const main = new URL('../../src/main.ts', import.meta.url).pathname;

export interface SidecarProcess {
  child: ChildProcess;
  port: number;
  adminPort: number;
  /** Everything written to stdout and stderr so far. */
  output(): string;
  exit: Promise<number | null>;
}

export async function startSidecarProcess(env: Record<string, string>): Promise<SidecarProcess> {
  const port = await freePort();
  const adminPort = await freePort();
  const child = spawn(process.execPath, [main], {
    env: { ...env, PHANTOM_LISTEN_PORT: String(port), PHANTOM_ADMIN_PORT: String(adminPort), PATH: process.env.PATH ?? '' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout?.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr?.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const exit = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const running: SidecarProcess = { child, port, adminPort, output: () => output, exit };
  for (let attempt = 0; attempt < 200; attempt += 1) {
    if (child.exitCode !== null) return running;
    const ready = await fetch(`http://127.0.0.1:${adminPort}/readyz`).then((response) => response.status, () => 0);
    if (ready === 200) return running;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  child.kill('SIGKILL');
  throw new Error(`the sidecar process did not become ready: ${output}`);
}
