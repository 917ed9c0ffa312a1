import { reloadCertificate } from '../certificate.ts';
import type { CliConfig } from '../config.ts';
import { reloadKeysInSlices } from '../keys-reload.ts';
import type { Logger } from '../log.ts';
import { checkServerTls } from '../tls-context.ts';
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
  /** When a SIGHUP last loaded each (`performance.now()`): a worker forked before it is told again. */
  readonly #loadedAt = { certificate: -1, keys: -1 };

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
   * What a SIGHUP loaded since `startedAt` (`performance.now()`; a worker forked before it and not yet
   * listening, which its message may have missed), if anything: the same message, for those files only.
   */
  reloadedSince(startedAt: number): ToWorker | undefined {
    const certificate = this.#loadedAt.certificate >= startedAt;
    const keys = this.#loadedAt.keys >= startedAt;
    return certificate || keys ? this.reloaded({ certificate, keys }) : undefined;
  }

  /** The certificate and key, and the keys file, for the workers to load: a worker loads what it holds. */
  reloaded(loaded: { certificate: boolean; keys: boolean }): ToWorker {
    const tls = this.#tls === undefined || !loaded.certificate ? [] : [this.#tls.cert, this.#tls.key];
    const keys = this.#keys === undefined || !loaded.keys ? [] : [this.#keys.path];
    return { se: 'reload', files: filesMessage(this.#files, [...tls, ...keys]) };
  }

  /**
   * SIGHUP: the certificate and key, and the keys file, read again and checked here first. What loads
   * replaces what the workers have; what does not is refused and logged, and the current one stays.
   * What was loaded, if anything, and the message that has the workers load it (and only it). The keys
   * file is checked in slices, the primary answering its workers meanwhile (~3 s for a million keys).
   */
  async reload(
    log: Logger,
    read?: (path: string) => Buffer,
  ): Promise<{ what: string; message: ToWorker } | undefined> {
    const config = { tlsFiles: this.#tls, keysFile: this.#keys };
    const certificate = await reloadCertificate(config, log, (cert, key, files) => {
      checkServerTls({ cert, key });
      this.#files.set(files.cert, cert);
      this.#files.set(files.key, key);
    });
    const path = this.#keys?.path ?? '';
    const take = (_keys: unknown, bytes: Buffer) => void this.#files.set(path, bytes);
    const keys = await reloadKeysInSlices(this.#keys, log, take, read);
    const loaded = [certificate && 'the certificate', keys && 'the API keys'].filter(Boolean);
    if (loaded.length === 0) return undefined;
    if (certificate) this.#loadedAt.certificate = performance.now();
    if (keys) this.#loadedAt.keys = performance.now();
    return { what: loaded.join(' and '), message: this.reloaded({ certificate, keys }) };
  }
}
