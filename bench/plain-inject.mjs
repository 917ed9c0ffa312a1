// The pipeline benchmark's control injector (pipeline.mjs, the `control` group): a request handed to a
// `(req, res)` handler without a socket, as light-my-request hands it, with none of light-my-request's
// objects made anew for each request. light-my-request 6.8.1 gives every request it makes a `connection`
// getter of its own (`Object.defineProperty` on the instance) and every result a `cookies` getter of its
// own (a getter in an object literal), each a closure over that request's objects; per-instance getters
// keep what their closures reach through V8's young collections, so about 40 % of what each injected
// event allocates survives them, is moved to the old generation and collected there (bench/README.md,
// "The injector's own garbage"). This one makes the same request as light-my-request does (its fields,
// its body pushed on an Immediate, then its end) and answers on Node's own `ServerResponse` over a
// socket that keeps nothing, ending it as Node's server does: its 'close' on the next tick.
import { EventEmitter } from 'node:events';
import { ServerResponse } from 'node:http';
import { Readable, Writable } from 'node:stream';

class PlainRequest extends Readable {
  constructor({ method, url, headers, payload }) {
    super({ autoDestroy: false });
    this.url = url;
    this.aborted = false;
    this.httpVersionMajor = 1;
    this.httpVersionMinor = 1;
    this.httpVersion = '1.1';
    this.method = method;
    this.headers = { 'user-agent': 'plain-inject' };
    for (const [name, value] of Object.entries(headers)) this.headers[name.toLowerCase()] = `${value}`;
    this.headers['content-length'] ??= String(Buffer.byteLength(payload));
    this.rawHeaders = Object.entries(this.headers).flat();
    this.socket = new Socketless();
    this.payload = payload;
    this.pushed = false;
  }

  _read() {
    setImmediate(() => {
      if (this.pushed) {
        this.push(null);
        return;
      }
      this.pushed = true;
      this.push(this.payload);
    });
  }
}

/** The request's socket, as light-my-request's: an emitter with an address. */
class Socketless extends EventEmitter {
  remoteAddress = '127.0.0.1';
}

/** The response's socket: what is written is kept as text (for a failure's message), then dropped. */
class Sink extends Writable {
  text = '';

  _write(chunk, _encoding, callback) {
    this.text += chunk;
    setImmediate(callback);
  }
}

/**
 * `dispatch(req, res)` for one request (`{method, url, headers, payload}`), answered with its status and
 * what was written (status line and headers included) once the response has finished.
 */
export function plainInject(dispatch, options) {
  return new Promise((resolve) => {
    const req = new PlainRequest(options);
    const res = new ServerResponse(req);
    const socket = new Sink();
    res.assignSocket(socket);
    res.once('finish', () => {
      res.detachSocket(socket);
      process.nextTick(closed, res);
      resolve({ statusCode: res.statusCode, payload: socket.text });
    });
    dispatch(req, res);
  });
}

/** Node's server's own end of a response (lib/_http_server.js, emitCloseNT). */
function closed(res) {
  if (res._closed) return;
  res.destroyed = true;
  res._closed = true;
  res.emit('close');
}
