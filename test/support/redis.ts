// A real redis-server for the fleet tests, on a free loopback port, stopped and started again
// on the same port to test what happens while Redis is away.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { freePort } from './ports.ts';

export interface RunningRedis {
  url: string;
  stop(): Promise<void>;
  start(): Promise<void>;
  /** SIGSTOP: the connection stays open, nothing is answered (a stalled or paused Redis). */
  pause(): void;
  /** SIGCONT. */
  resume(): void;
}

/** Whether the redis-server binary (Debian's redis-server package) is on this machine. */
export function redisAvailable(): boolean {
  return spawnSync('redis-server', ['--version'], { stdio: 'ignore' }).status === 0;
}

export const REDIS_MISSING = 'redis-server is not installed (Debian package redis-server): the fleet tests need it; .ci/run installs it';

export async function startRedis(): Promise<RunningRedis> {
  const port = await freePort();
  let child: ChildProcess | undefined;
  const start = async (): Promise<void> => {
    child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: ['ignore', 'pipe', 'ignore'] });
    await new Promise<void>((resolve, reject) => {
      let output = '';
      const timer = setTimeout(() => reject(new Error(`redis-server did not start: ${output}`)), 10_000);
      child?.stdout?.on('data', (chunk: Buffer) => {
        output += chunk.toString();
        if (output.includes('Ready to accept connections')) {
          clearTimeout(timer);
          resolve();
        }
      });
    });
  };
  await start();
  return {
    url: `redis://127.0.0.1:${port}`,
    start,
    pause: () => child?.kill('SIGSTOP'),
    resume: () => child?.kill('SIGCONT'),
    stop: () =>
      new Promise<void>((resolve) => {
        if (child === undefined || child.exitCode !== null) {
          resolve();
          return;
        }
        child.once('exit', () => resolve());
        child.kill('SIGKILL');
      }),
  };
}
