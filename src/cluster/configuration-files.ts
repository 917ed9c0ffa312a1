import { createSecureContext } from 'node:tls';
import { reloadCertificate } from '../certificate.ts';
import type { CliConfig } from '../config.ts';
import type { Logger } from '../log.ts';
import { filesMessage, type ToWorker } from './messages.ts';

/**
 * What the workers of --workers read their configuration from: the files as the primary read them at
 * start, and the certificate and key a SIGHUP loaded since. Workers never read the files themselves, so
 * that one started to replace another serves what the others serve, whatever the files hold by then (a
 * keys file edited for the next start, a renewed certificate that does not load).
 */
export class ConfigurationFiles {
  readonly #files: Map<string, Buffer>;
  readonly #tls: CliConfig['tlsFiles'];

  constructor(files: Map<string, Buffer>, tls: CliConfig['tlsFiles']) {
    this.#files = files;
    this.#tls = tls;
  }

  /** Every file, for a worker that starts. */
  all(): ToWorker {
    return { se: 'files', files: filesMessage(this.#files) };
  }

  /** The certificate and key, for the workers to load. */
  reloaded(): ToWorker {
    const tls = this.#tls;
    return { se: 'reload', files: tls === undefined ? {} : filesMessage(this.#files, [tls.cert, tls.key]) };
  }

  /**
   * SIGHUP: the certificate and key read again and loaded here first. A pair that loads replaces the
   * current one (true); one that does not is refused and logged, and the current one stays (false).
   */
  reload(log: Logger): boolean {
    return reloadCertificate(this.#tls, log, (cert, key, files) => {
      createSecureContext({ cert, key });
      this.#files.set(files.cert, cert);
      this.#files.set(files.key, key);
    });
  }
}
