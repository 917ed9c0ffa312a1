// The pipeline benchmark's control injector (pipeline.mjs, the `control` and `ab` groups): a request
// handed to a `(req, res)` handler without a socket, as light-my-request hands it, without the closures
// light-my-request makes for each request. light-my-request 6.8.1 gives every request its own
// `connection` getter and every result its own `cookies` getter, `json` and `stream` functions, each a
// closure over that request's objects, and with them about 40 % of what each injected event allocates
// survives V8's young collections, is moved to the old generation and collected there (bench/HISTORY.md,
// "The injector's own garbage"). This one makes the request as light-my-request does (its fields, its
// body pushed on an Immediate, then its end) and answers on Node's own `ServerResponse` over a socket
// that keeps only the answer's text, ending it as Node's server does ('finish' once the socket took the
// answer, then 'close' on the next tick), where light-my-request emits 'finish' from `end()` itself.
import { EventEmitter } from 'node:events';
import { ServerResponse } from 'node:http';
import { Readable, Writable } from 'node:stream';

class PlainRequest extends Readable {
  constructor({ method = 'GET', url, headers = {}, payload }) {
    super({ autoDestroy: false });
    this.url = url;
    this.aborted = false;
    this.httpVersionMajor = 1;
    this.httpVersionMinor = 1;
    this.httpVersion = '1.1';
    this.method = method.toUpperCase();
    this.headers = {};
    this.rawHeaders = [];
    for (const [name, value] of Object.entries(headers)) {
      const field = name.toLowerCase();
      // A header sent more than once, as Node's parser gives it: joined, and each value in rawHeaders.
      const values = Array.isArray(value) ? value.map(String) : [String(value)];
      this.headers[field] = values.join(', ');
      for (const each of values) this.rawHeaders.push(field, each);
    }
    this.#add('user-agent', 'plain-inject');
    this.#add('host', 'localhost:80');
    // As light-my-request: a length for a body that has one, none for an empty or absent one.
    if (payload) this.#add('content-length', String(Buffer.byteLength(payload)));
    this.socket = new Socketless();
    this.payload = payload || null;
    this.pushed = false;
  }

  #add(field, value) {
    if (Object.hasOwn(this.headers, field)) return;
    this.headers[field] = value;
    this.rawHeaders.push(field, value);
  }

  _read() {
    setImmediate(() => {
      if (this.pushed || this.payload === null) {
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

/** The response's socket: it keeps what is written as text (for a failure's message), and nothing else. */
class Sink extends Writable {
  text = '';

  _write(chunk, _encoding, callback) {
    this.text += chunk;
    setImmediate(callback);
  }
}

/**
 * `dispatch(req, res)` for one request (`{method, url, headers, payload}`), answered with its status and
 * what was written (status line and headers included) once the response has finished; rejected if the
 * response is destroyed before it finishes, as light-my-request rejects then.
 */
export function plainInject(dispatch, options) {
  return new Promise((resolve, reject) => {
    const req = new PlainRequest(options);
    const res = new ServerResponse(req);
    const socket = new Sink();
    res.assignSocket(socket);
    res.once('finish', () => {
      res.detachSocket(socket);
      process.nextTick(emitClose, res);
      resolve({ statusCode: res.statusCode, payload: socket.text });
    });
    res.once('close', () => reject(new Error('the response was destroyed before it finished')));
    dispatch(req, res);
  });
}

/** Node's server's own end of a response (lib/_http_server.js, emitCloseNT). */
function emitClose(res) {
  if (res._closed) return;
  res.destroyed = true;
  res._closed = true;
  res.emit('close');
}
