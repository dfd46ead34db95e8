// Bundles the dashboard into a flat folder the server serves:
//   node web/build.mjs <outdir>   ->  <outdir>/index.html, app.js, app.css
// index.html is served at GET / and refers to /ui/app.js and /ui/app.css.
// No network, no other output; exits non-zero with a message on any error.
import { mkdir, readFile, writeFile } from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));

function fail(message) {
  process.stderr.write(`web/build.mjs: error: ${message}\n`);
  process.exit(1);
}

const outArg = process.argv[2];
if (!outArg || process.argv.length > 3) {
  fail("usage: node web/build.mjs <outdir>");
}
const outdir = path.resolve(outArg);

let esbuild;
try {
  esbuild = await import("esbuild");
} catch (e) {
  fail(`cannot load esbuild (run 'npm ci' in ${here}): ${e.message}`);
}

const common = {
  absWorkingDir: here,
  bundle: true,
  minify: true,
  write: false,
  logLevel: "silent",
  legalComments: "none",
  target: "es2020",
};

try {
  const [js, css] = await Promise.all([
    esbuild.build({
      ...common,
      entryPoints: [path.join(here, "src", "main.ts")],
      format: "iife",
      platform: "browser",
      outfile: path.join(outdir, "app.js"),
      define: { "process.env.NODE_ENV": '"production"' },
    }),
    esbuild.build({
      ...common,
      entryPoints: [path.join(here, "src", "app.css")],
      loader: { ".css": "css" },
      outfile: path.join(outdir, "app.css"),
    }),
  ]);
  const html = await readFile(path.join(here, "src", "index.html"), "utf8");
  await mkdir(outdir, { recursive: true });
  const pick = (result, ext) => {
    const file = result.outputFiles.find((f) => f.path.endsWith(ext));
    if (!file) throw new Error(`esbuild produced no ${ext} file`);
    return file.contents;
  };
  await Promise.all([
    writeFile(path.join(outdir, "app.js"), pick(js, ".js")),
    writeFile(path.join(outdir, "app.css"), pick(css, ".css")),
    writeFile(path.join(outdir, "index.html"), html),
  ]);
} catch (e) {
  const errors = e && Array.isArray(e.errors) ? e.errors : null;
  if (errors && errors.length > 0) {
    const lines = errors.map((m) =>
      m.location ? `${m.location.file}:${m.location.line}:${m.location.column}: ${m.text}` : m.text,
    );
    fail(`bundling failed:\n  ${lines.join("\n  ")}`);
  }
  fail(e && e.message ? e.message : String(e));
}
