// The floor: a bare node:https server that reads the body and answers 200 with an empty body.
// Nothing can do the contract's work faster than this does no work.
import { createServer } from 'node:https';
import { port, ready, tls } from './common.mjs';

const server = createServer({ ...tls, keepAliveTimeout: 65_000 }, (req, res) => {
  req.on('data', () => {});
  req.on('end', () => {
    res.writeHead(200, { 'content-length': '0' });
    res.end();
  });
});
server.listen(port, '127.0.0.1', () => ready(server));
