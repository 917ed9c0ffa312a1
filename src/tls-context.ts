import { createSecureContext } from 'node:tls';

// A server's TLS context trusts no certificate (`ca: []`): it asks no sender for one. Given no list, node
// builds a store of its ~140 root certificates (and NODE_EXTRA_CA_CERTS's) for the first context of a
// process, ~30 ms of every start on a 2-core VM, and OpenSSL then filled the chain a sender is sent with
// the issuer --cert left out whenever that store held it: what was sent depended on the host, not the file.

/** A pair: the server's certificate (its chain after it, in the same PEM) and its key. */
export interface TlsPair {
  readonly cert: string | Buffer;
  readonly key: string | Buffer;
}

/** The TLS options of a server that presents `pair`, and only the certificates it holds. */
export const serverTls = ({ cert, key }: TlsPair) => ({ cert, key, ca: [] });

/** Throws what TLS would throw of `pair` as a server's: a key that is not the certificate's, a bad PEM. */
export function checkServerTls(pair: TlsPair): void {
  createSecureContext(serverTls(pair));
}
