import assert from 'node:assert/strict';
import { test } from 'node:test';
import { connect } from 'node:tls';
import { listenTls, testCert } from './helpers-cert.ts';

// Whether an unsupported version is a 505 (a well-formed request line) or a 400 (a garbled one) must not
// depend on how the client's writes split the line: Node's parser error carries only the chunk it failed
// in.
const { cert } = testCert();

async function firstLine(port: number, parts: string[]): Promise<string> {
  const s = connect({ host: '127.0.0.1', port, ca: cert, servername: 'localhost' });
  let text = '';
  s.on('data', (c) => {
    text += c;
  });
  s.on('error', () => {});
  await new Promise<void>((r) => s.once('secureConnect', () => r()));
  for (const p of parts) {
    s.write(p);
    await new Promise((r) => setTimeout(r, 50));
  }
  for (let i = 0; i < 40 && !text.includes('\r\n'); i++) await new Promise((r) => setTimeout(r, 25));
  s.destroy();
  return text.split('\r\n')[0] as string;
}

test('HTTP/1.2 is a 505 whether its request line came in one write or two', async () => {
  const { endpoint, port } = await listenTls({ handlers: { track: () => {} } });
  try {
    assert.equal(
      await firstLine(port, ['POST / HTTP/1.2\r\nHost: x\r\n\r\n']),
      'HTTP/1.1 505 HTTP Version Not Supported',
    );
    assert.equal(
      await firstLine(port, ['POST / HTTP/1.', '2\r\nHost: x\r\n\r\n']),
      'HTTP/1.1 505 HTTP Version Not Supported',
    );
  } finally {
    await endpoint.close();
  }
});
