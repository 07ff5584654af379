// A Node.js streaming proxy in front of the fake upstream, with Node's built-in http module only.
//
//   node node_proxy.js --port 8000 --upstream http://127.0.0.1:8001
//
// Each request is forwarded to the upstream (same method, path and query, X-Request-ID and body); the upstream's
// answer is piped to the client, so back-pressure holds (pipe pauses the upstream while the client's socket is
// full). When the client leaves before the end, the upstream request is destroyed: its connection closes, and the
// upstream stops producing. ('close' on the response, not on the request: since Node 16 a request's 'close'
// fires as soon as its body has been read.)
'use strict';
const http = require('http');

function arg(name, fallback) {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : fallback;
}

const port = Number(arg('--port', process.env.PORT || '8000'));
const upstream = new URL(arg('--upstream', process.env.STREAM_HARNESS_UPSTREAM_URL || 'http://127.0.0.1:8001'));
const agent = new http.Agent({ keepAlive: false });

const server = http.createServer((req, res) => {
  const headers = {};
  for (const name of ['x-request-id', 'content-type', 'accept', 'content-length']) {
    if (req.headers[name] !== undefined) headers[name] = req.headers[name];
  }
  const upstreamReq = http.request(
    { host: upstream.hostname, port: upstream.port, method: req.method, path: req.url, headers, agent },
    (upstreamRes) => {
      res.writeHead(upstreamRes.statusCode, {
        'content-type': upstreamRes.headers['content-type'] || 'application/octet-stream',
      });
      upstreamRes.pipe(res);
    },
  );
  upstreamReq.on('error', (err) => {
    if (!res.headersSent) {
      res.writeHead(502, { 'content-type': 'text/plain' });
      res.end(`upstream: ${err.message}\n`);
    } else {
      res.destroy();
    }
  });
  res.on('close', () => {
    if (!res.writableFinished) upstreamReq.destroy(); // the client left: cancel the upstream stream
  });
  req.pipe(upstreamReq);
});

server.listen(port, '127.0.0.1', () => {
  console.log(`node proxy listening on http://127.0.0.1:${server.address().port} upstream ${upstream.href}`);
});
process.on('SIGTERM', () => process.exit(0));
