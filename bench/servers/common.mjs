// What every benchmark server shares: its certificate, its port, and how it says it is ready.
import { readFileSync } from 'node:fs';

export const tls = {
  cert: readFileSync(process.env.BENCH_CERT),
  key: readFileSync(process.env.BENCH_KEY),
};
export const port = Number(process.env.BENCH_PORT ?? 0);
export const API_KEY = 'bench-key';

/** The orchestrator reads this line to learn the port. */
export function ready(server) {
  process.stdout.write(`ready ${server.address().port}\n`);
}
