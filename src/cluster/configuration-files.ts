import { createSecureContext } from 'node:tls';
import { reloadCertificate } from '../certificate.ts';
import type { CliConfig } from '../config.ts';
import { reloadKeys } from '../config-keys.ts';
import type { Logger } from '../log.ts';
import { filesMessage, type ToWorker } from './messages.ts';

/**
 * What the workers of --workers read their configuration from: the files as the primary read them at
 * start, and the certificate, key and keys file a SIGHUP loaded since. Workers never read the files
 * themselves, so that one started to replace another serves what the others serve, whatever the files
 * hold by then (a keys file edited for the next SIGHUP, a renewed certificate that does not load).
 */
export class ConfigurationFiles {
  readonly #files: Map<string, Buffer>;
  readonly #tls: CliConfig['tlsFiles'];
  readonly #keys: CliConfig['keysFile'];

  constructor(files: Map<string, Buffer>, config: Pick<CliConfig, 'tlsFiles' | 'keysFile'>) {
    this.#files = files;
    this.#tls = config.tlsFiles;
    this.#keys = config.keysFile;
  }

  /** Every file, for a worker that starts. */
  all(): ToWorker {
    return { se: 'files', files: filesMessage(this.#files) };
  }

  /**
   * The certificate and key, and the keys file, for the workers to load: those a SIGHUP loaded, or all of
   * them (a worker that started before the last one). A worker loads what the message holds, no more.
   */
  reloaded(loaded = { certificate: true, keys: true }): ToWorker {
    const tls = this.#tls === undefined || !loaded.certificate ? [] : [this.#tls.cert, this.#tls.key];
    const keys = this.#keys === undefined || !loaded.keys ? [] : [this.#keys.path];
    return { se: 'reload', files: filesMessage(this.#files, [...tls, ...keys]) };
  }

  /**
   * SIGHUP: the certificate and key, and the keys file, read again and checked here first. What loads
   * replaces what the workers have; what does not is refused and logged, and the current one stays.
   * What was loaded, if anything, and the message that has the workers load it (and only it).
   */
  reload(log: Logger): { what: string; message: ToWorker } | undefined {
    // Over plain HTTP, "no certificate to reload" is said only where there is nothing else to reload.
    const tls = this.#tls !== undefined || this.#keys === undefined;
    const certificate =
      tls &&
      reloadCertificate(this.#tls, log, (cert, key, files) => {
        createSecureContext({ cert, key });
        this.#files.set(files.cert, cert);
        this.#files.set(files.key, key);
      });
    const path = this.#keys?.path ?? '';
    const keys = reloadKeys(this.#keys, log, (_keys, bytes) => this.#files.set(path, bytes));
    const loaded = [certificate && 'the certificate', keys && 'the API keys'].filter(Boolean);
    if (loaded.length === 0) return undefined;
    return { what: loaded.join(' and '), message: this.reloaded({ certificate, keys }) };
  }
}
