import { connect as connectTcp, type Socket } from 'node:net';
import { connect as connectTls } from 'node:tls';
import { API_KEY, basic } from './helpers.ts';
import { testCert } from './helpers-cert.ts';

// What the protocol tests share: raw connections to the server, which keep every byte it writes and see
// when it closes, and an event request written out by hand.

/** maxBodyBytes of the servers under test. */
export const LIMIT = 4096;
export const { cert } = testCert();

/** A raw connection (TLS, or TCP when `tcp`) that keeps every byte received. */
export class RawConnection {
  text = '';
  closed = false;
  readonly socket: Socket;
  readonly ready: Promise<void>;
  readonly close: Promise<void>;
  private waiters: Array<() => void> = [];

  constructor(port: number, tcp = false) {
    let ready = () => {};
    this.ready = new Promise<void>((resolve) => {
      ready = resolve;
    });
    this.socket = tcp
      ? connectTcp(port, '127.0.0.1', ready)
      : connectTls({ host: '127.0.0.1', port, ca: cert, servername: 'localhost' }, ready);
    this.socket.on('error', () => {}); // a reset by the server shows as the close
    this.socket.on('data', (chunk: Buffer) => {
      this.text += chunk.toString();
      this.wake();
    });
    this.close = new Promise<void>((resolve) =>
      this.socket.on('close', () => {
        this.closed = true;
        this.wake();
        resolve();
      }),
    );
  }

  write(text: string): void {
    this.socket.write(text);
  }

  /** Resolves once what was received matches `re`; rejects if the connection closes first. */
  async until(re: RegExp): Promise<void> {
    while (!re.test(this.text)) {
      if (this.closed) throw new Error(`closed before ${re}; received:\n${this.text}`);
      await new Promise<void>((resolve) => this.waiters.push(resolve));
    }
  }

  destroy(): void {
    this.socket.destroy();
  }

  private wake(): void {
    const waiters = this.waiters;
    this.waiters = [];
    for (const wake of waiters) wake();
  }
}

/** A POST of `body` with API_KEY, as raw HTTP/1.1; `headers` (each line with its CRLF) added last. */
export const eventRequest = (body: string, headers = '') =>
  `POST / HTTP/1.1\r\nHost: localhost\r\nAuthorization: ${basic(API_KEY)}\r\n` +
  `Content-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n${headers}\r\n${body}`;

/** The status lines of every response in `text`, in order. */
export const statusLines = (text: string) =>
  [...text.matchAll(/HTTP\/1\.1 (\d{3})[^\r]*\r\n/g)].map((m) => m[1]);
