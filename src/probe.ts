// A real connection before any event is sent: whether anything listens, whether it speaks HTTP, and
// over TLS whether its certificate verifies, said in one line, rather than as every request of the run
// failing the same way.
import { isIP, connect as tcpConnect } from 'node:net';
import { connect as tlsConnect } from 'node:tls';

const PROBE_TIMEOUT_MS = 5_000; // 5 s, Segment's own patience

/**
 * The codes of a certificate that does not verify: OpenSSL's X509 ones (DEPTH_ZERO_SELF_SIGNED_CERT,
 * CERT_HAS_EXPIRED…) and node's ERR_TLS_CERT_ALTNAME_INVALID; not ERR_SSL_* (a failed handshake).
 */
const CERTIFICATE_CODE = /^(?!ERR_SSL_).*(CERT|SELF_SIGNED|ISSUER|ALTNAME|VERIFY|CRL)/;
/** OpenSSL's reason in its error string (`…:SSL routines:ssl3_get_record:wrong version number:…`). */
const OPENSSL_REASON = /:SSL routines:[^:]*:([^:]+):/;

/**
 * Connects to `url`'s host and port (for https:, completes the TLS handshake, verifying the certificate
 * against node's CAs and NODE_EXTRA_CA_CERTS unless `insecure`; for http:, sends a HEAD, and a POST if
 * the HEAD gets no answer), then closes. Resolves with what went wrong, in a sentence,
 * or undefined when all is well. Never rejects.
 */
export async function probe(
  url: URL,
  insecure: boolean,
  timeoutMs = PROBE_TIMEOUT_MS,
): Promise<string | undefined> {
  const head = await ask(url, insecure, timeoutMs, 'HEAD', Math.min(timeoutMs, HEAD_ANSWER_MS));
  // An endpoint may take nothing but POST, and close, reset or never answer a HEAD (a handler with no
  // branch for other methods): asked again with a POST (no credentials, no body), given the whole wait,
  // before it is said not to speak HTTP.
  return head.silent ? (await ask(url, insecure, timeoutMs, 'POST')).problem : head.problem;
}

/** How long a connected HEAD waits for its answer: any server that answers one does so in far less. */
const HEAD_ANSWER_MS = 2_000;

/**
 * One look at `url` (over plain HTTP, a request with `method`, its answer waited for `answerMs` once
 * connected): what went wrong (`problem`), and whether a plain-HTTP connection was made and then got no
 * byte back, closed, reset or left waiting (`silent`).
 */
function ask(
  url: URL,
  insecure: boolean,
  timeoutMs: number,
  method: 'HEAD' | 'POST',
  answerMs = timeoutMs,
): Promise<{ problem?: string; silent: boolean }> {
  const secure = url.protocol === 'https:';
  const host = url.hostname.replace(/^\[(.*)\]$/, '$1'); // an IPv6 literal without its brackets
  const port = Number(url.port || (secure ? 443 : 80));
  const where = `${url.hostname}:${port}`;
  return new Promise((resolve) => {
    let connected = false;
    const done = (problem: string | undefined, silent = false) =>
      resolve({ ...(problem !== undefined && { problem }), silent: silent && connected && !secure });
    const socket = secure
      ? tlsConnect({
          host,
          port,
          // SNI takes a name, never an address; an address is checked against the certificate's IP SANs.
          ...(isIP(host) === 0 && { servername: host }),
          rejectUnauthorized: !insecure,
          ALPNProtocols: ['http/1.1'],
        })
      : tcpConnect({ host, port });
    let waitMs = timeoutMs;
    socket.setTimeout(waitMs, () => {
      const stage = !connected ? 'no connection to' : secure ? 'no TLS handshake with' : 'no answer from';
      socket.destroy();
      done(`${stage} ${where} within ${waitMs / 1000} s`, true);
    });
    socket.once('connect', () => {
      connected = true;
    });
    socket.once('secureConnect', () => {
      socket.setTimeout(0);
      // Ended, not destroyed: the handshake's last flight and close_notify reach the server, which sees
      // a client that came and went rather than a handshake cut off.
      socket.end();
      done(undefined);
    });
    // Over plain HTTP a connection proves little (a TLS port takes it too): one request, and an answer
    // that is HTTP.
    if (!secure) {
      socket.once('connect', () => {
        waitMs = answerMs;
        socket.setTimeout(waitMs);
        // Not half-closed after it: a server that answers after a moment (node's, at any await) drops a
        // request whose sender has ended its side.
        const body = method === 'POST' ? 'Content-Type: application/json\r\nContent-Length: 0\r\n' : '';
        socket.write(
          `${method} ${url.pathname} HTTP/1.1\r\nHost: ${url.host}\r\n${body}Connection: close\r\n\r\n`,
        );
      });
      let answered = false;
      let head = Buffer.alloc(0);
      // The first five bytes say whether it is HTTP, however many writes they come in.
      socket.on('data', (chunk: Buffer) => {
        head = Buffer.concat([head, chunk]).subarray(0, 5);
        if (head.length < 5 && head.toString('latin1') === 'HTTP/'.slice(0, head.length)) return;
        answered = true;
        socket.setTimeout(0);
        socket.destroy();
        done(head.toString('latin1') === 'HTTP/' ? undefined : notHttp(where));
      });
      socket.once('close', () => {
        if (!answered) done(notHttp(where), true);
      });
    }
    socket.on('error', (err: NodeJS.ErrnoException) => {
      socket.setTimeout(0);
      done(describe(err, where, connected, secure), true);
    });
  });
}

function describe(err: NodeJS.ErrnoException, where: string, connected: boolean, secure: boolean): string {
  const code = err.code ?? 'ERROR';
  if (code === 'ECONNREFUSED') return `connection refused by ${where}: nothing is listening there`;
  if (code === 'ENOTFOUND' || code === 'EAI_AGAIN') return `${where}: the name does not resolve (${code})`;
  if (!connected) return `cannot connect to ${where}: ${err.message}`;
  if (!secure) return `${where} closed the connection before answering (${code}): is it https:// ?`;
  const reason = (OPENSSL_REASON.exec(err.message)?.[1] ?? err.message).replace(/[\s:]+$/, '');
  if (CERTIFICATE_CODE.test(code)) {
    return (
      `the certificate of ${where} does not verify: ${reason} (${code}); nothing was sent. ` +
      'Use --insecure to send anyway, or NODE_EXTRA_CA_CERTS=ca.pem to trust a private CA'
    );
  }
  const plain = code === 'ERR_SSL_WRONG_VERSION_NUMBER' ? '; is it plain HTTP (http://)?' : '';
  return `the TLS handshake with ${where} failed: ${reason} (${code})${plain}`;
}

const notHttp = (where: string) => `${where} did not answer HTTP: is it https:// ?`;
