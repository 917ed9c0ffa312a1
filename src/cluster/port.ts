import { type AddressInfo, createServer } from 'node:net';
import type { CliConfig } from '../config.ts';
import { OPTIONS } from '../option-table.ts';

/** The variable that tells a worker the port its primary chose for `--port 0`. */
export const PORT_VARIABLE = 'SEGMENT_ENDPOINT_WORKER_PORT';

/**
 * The port the workers of `--port 0` listen on, chosen once by their primary. node:cluster closes a
 * listening socket no worker holds any more: when every worker had died at once, their replacements,
 * listening on port 0 again, got another free port, and the one announced refused connections for good.
 * Undefined when a port was given, or when none can be chosen here (the workers then say why, as one
 * process would). Between this choice and the first worker's listen (its start, a few hundred ms) another
 * process could take the port: the start then stops, EADDRINUSE said of it, as for a port given.
 */
export async function chosenPort(config: CliConfig): Promise<number | undefined> {
  if ((config.options.port ?? OPTIONS.port.default) !== 0) return undefined;
  const server = createServer();
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, config.options.host ?? OPTIONS.host.default, resolve);
    });
    return (server.address() as AddressInfo).port;
  } catch {
    return undefined;
  } finally {
    if (server.listening) await new Promise((closed) => server.close(closed));
  }
}

/** The variable that tells the workers `port`, when one was chosen. */
export function portVariable(port: number | undefined): Record<string, string> {
  return port === undefined ? {} : { [PORT_VARIABLE]: String(port) };
}

/** A worker's `config` with the port its primary chose (`PORT_VARIABLE`), where `--port 0` left it open. */
export function withChosenPort(config: CliConfig, env: NodeJS.ProcessEnv): CliConfig {
  const port = env[PORT_VARIABLE];
  return port === undefined ? config : { ...config, options: { ...config.options, port: Number(port) } };
}
