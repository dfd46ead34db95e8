// A same-origin stand-in for a keel binary that does not serve the dashboard
// (yet): serves a built bundle at / and /ui/<name>, forwards every other
// request to a keel server. For development and for dashboard_test.mjs with
// KEEL_WEB_DIR set.
//
//   node tests/browser/dev_proxy.mjs web/dist http://127.0.0.1:5000 8088
import { readFile } from "node:fs/promises";
import http from "node:http";
import path from "node:path";
import { pathToFileURL } from "node:url";

const TYPES = { ".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8" };

/** Starts the proxy; resolves to {url, close()}. */
export function startDevProxy({ webDir, target, port = 0, host = "127.0.0.1" }) {
  const upstream = new URL(target);
  const server = http.createServer(async (req, res) => {
    const url = new URL(req.url ?? "/", "http://x");
    if (req.method === "GET" && (url.pathname === "/" || url.pathname.startsWith("/ui/"))) {
      const name = url.pathname === "/" ? "index.html" : url.pathname.slice(4);
      if (name.includes("/") || name.startsWith(".")) {
        res.writeHead(404).end();
        return;
      }
      try {
        const body = await readFile(path.join(webDir, name));
        res.writeHead(200, { "Content-Type": TYPES[path.extname(name)] ?? "application/octet-stream", "Cache-Control": "no-store" });
        res.end(body);
      } catch {
        res.writeHead(404).end();
      }
      return;
    }
    const forward = http.request(
      { host: upstream.hostname, port: upstream.port, method: req.method, path: req.url, headers: { ...req.headers, host: upstream.host } },
      (up) => {
        res.writeHead(up.statusCode ?? 502, up.headers);
        up.pipe(res);
      },
    );
    forward.on("error", (e) => {
      if (!res.headersSent) res.writeHead(502, { "Content-Type": "text/plain" });
      res.end(`dev proxy: ${e.message}`);
    });
    req.pipe(forward);
  });
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => {
      const addr = server.address();
      resolve({ url: `http://${host}:${addr.port}`, close: () => new Promise((r) => server.close(() => r())) });
    });
  });
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) {
  const [webDir, target, port] = process.argv.slice(2);
  if (!webDir || !target) {
    process.stderr.write("usage: node tests/browser/dev_proxy.mjs WEB_DIR KEEL_URL [PORT]\n");
    process.exit(2);
  }
  const p = await startDevProxy({ webDir: path.resolve(webDir), target, port: Number(port ?? 8088) });
  process.stdout.write(`dashboard at ${p.url}/ (API from ${target})\n`);
}
