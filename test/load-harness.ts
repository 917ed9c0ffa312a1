// What the `segment-endpoint load` tests share: an io that keeps what the command writes, and a port
// nothing listens on.
import { createServer as createNetServer } from 'node:net';

/** An io that keeps what the command writes. */
export function capture() {
  let stdout = '';
  let stderr = '';
  return {
    io: { stdout: { write: (t: string) => (stdout += t) }, stderr: { write: (t: string) => (stderr += t) } },
    stdout: () => stdout,
    stderr: () => stderr,
  };
}

/** A port nothing listens on: one just given back by the kernel. */
export async function freePort(): Promise<number> {
  const server = createNetServer();
  await new Promise<void>((done) => server.listen(0, '127.0.0.1', done));
  const { port } = server.address() as { port: number };
  await new Promise((done) => server.close(done));
  return port;
}
