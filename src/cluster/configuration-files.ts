import { reloadCertificate } from '../certificate.ts';
import type { CliConfig, ReloadedFiles } from '../config.ts';
import { reloadKeysInSlices } from '../keys-reload.ts';
import type { Logger } from '../log.ts';
import { reloadSecretFile } from '../secret-reload.ts';
import { checkServerTls } from '../tls-context.ts';
import { type FilesToSend, filesToSend } from './transfer.ts';

/**
 * What the workers of --workers read their configuration from: the files as the primary read them at
 * start, and the certificate, key, keys file and secret file a SIGHUP loaded since. Workers never read
 * the files themselves, so that one started to replace another serves what the others serve, whatever
 * the files hold by then (a keys file edited for the next SIGHUP, a renewed certificate that does not
 * load).
 */
export class ConfigurationFiles {
  readonly #files: Map<string, Buffer>;
  readonly #tls: CliConfig['tlsFiles'];
  readonly #keys: CliConfig['keysFile'];
  readonly #secret: string | undefined;
  /** When a SIGHUP last loaded each (`performance.now()`): a worker forked before it is told again. */
  readonly #loadedAt: Record<keyof Loaded, number> = { certificate: -1, keys: -1, secret: -1 };

  constructor(files: Map<string, Buffer>, config: ReloadedFiles) {
    this.#files = files;
    this.#tls = config.tlsFiles;
    this.#keys = config.keysFile;
    this.#secret = config.signatureSecretFile;
  }

  /** Every file, for a worker that starts. */
  all(): FilesToSend {
    return filesToSend('files', this.#files);
  }

  /**
   * What a SIGHUP loaded since `startedAt` (`performance.now()`; a worker forked before it and not yet
   * listening, which its message may have missed), if anything: the same message, for those files only.
   */
  reloadedSince(startedAt: number): FilesToSend | undefined {
    const certificate = this.#loadedAt.certificate >= startedAt;
    const keys = this.#loadedAt.keys >= startedAt;
    const secret = this.#loadedAt.secret >= startedAt;
    return certificate || keys || secret ? this.reloaded({ certificate, keys, secret }) : undefined;
  }

  /** The certificate and key, the keys file, the secret file: what the workers load (each what it holds). */
  reloaded(loaded: Loaded): FilesToSend {
    const tls = this.#tls === undefined || !loaded.certificate ? [] : [this.#tls.cert, this.#tls.key];
    const keys = this.#keys === undefined || !loaded.keys ? [] : [this.#keys.path];
    const secret = this.#secret === undefined || !loaded.secret ? [] : [this.#secret];
    return filesToSend('reload', this.#files, [...tls, ...keys, ...secret]);
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
  ): Promise<{ what: string; message: FilesToSend } | undefined> {
    const config = { tlsFiles: this.#tls, keysFile: this.#keys, signatureSecretFile: this.#secret };
    const certificate = await reloadCertificate(config, log, (cert, key, files) => {
      checkServerTls({ cert, key });
      this.#files.set(files.cert, cert);
      this.#files.set(files.key, key);
    });
    const path = this.#keys?.path ?? '';
    const take = (_keys: unknown, bytes: Buffer) => void this.#files.set(path, bytes);
    const keys = await reloadKeysInSlices(this.#keys, log, take, read);
    const keep = (_secrets: unknown, bytes: Buffer) => void this.#files.set(this.#secret ?? '', bytes);
    const secret = await reloadSecretFile(this.#secret, log, keep, read);
    const named = { certificate: 'the certificate', keys: 'the API keys', secret: 'the signature secret' };
    const loaded = { certificate, keys, secret };
    const what = (Object.keys(named) as Array<keyof Loaded>).filter((file) => loaded[file]);
    if (what.length === 0) return undefined;
    for (const file of what) this.#loadedAt[file] = performance.now();
    return { what: listed(what.map((file) => named[file])), message: this.reloaded(loaded) };
  }
}

/** What a SIGHUP loaded. */
interface Loaded {
  readonly certificate: boolean;
  readonly keys: boolean;
  readonly secret: boolean;
}

/** `a`, `a and b`, `a, b and c`. */
const listed = (items: readonly string[]): string =>
  items.length < 2 ? (items[0] ?? '') : `${items.slice(0, -1).join(', ')} and ${items.at(-1)}`;
