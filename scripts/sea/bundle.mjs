// Bundles the CLI into one CommonJS file for the Node single executable.
// Usage: node scripts/sea/bundle.mjs ENTRY OUTFILE
import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const [entry, outfile] = process.argv.slice(2);
if (!entry || !outfile) {
  console.error('usage: bundle.mjs ENTRY OUTFILE');
  process.exit(2);
}
const missing = fileURLToPath(new URL('missing-module.cjs', import.meta.url));
// Node 22 (the Windows executable) lacks AsyncDisposableStack: a guarded polyfill.
const polyfill = readFileSync(new URL('async-disposable-stack.js', import.meta.url), 'utf8');
const keepalive = readFileSync(new URL('keepalive-after-connect.js', import.meta.url), 'utf8');

const result = await build({
  entryPoints: [entry],
  outfile,
  bundle: true,
  platform: 'node',
  format: 'cjs',
  target: 'node22',
  // A SEA's main script is CommonJS: import.meta does not exist there, yet
  // yargs calls createRequire(import.meta.url).
  banner: {
    js: `${polyfill}\n${keepalive}\nconst __import_meta_url = require("node:url").pathToFileURL(__filename).href;`,
  },
  define: {
    'import.meta.url': '__import_meta_url',
    'import.meta.filename': '__filename',
    'import.meta.dirname': '__dirname',
    // ws probes its optional native add-ons with require(); the bundle has
    // none, and esbuild caches a failed require as an empty module, so
    // switch the probes off at build time.
    'process.env.WS_NO_BUFFER_UTIL': '"1"',
    'process.env.WS_NO_UTF_8_VALIDATE': '"1"',
  },
  // import() is unreliable in a SEA main script with a code cache; require() is not.
  supported: { 'dynamic-import': false },
  alias: { bufferutil: missing, 'utf-8-validate': missing, 'supports-color': missing },
  minify: true,
  // Error and class names stay readable in messages and logs.
  keepNames: true,
  legalComments: 'none',
  metafile: true,
  logLevel: 'warning',
});
writeFileSync(`${outfile}.meta.json`, JSON.stringify(result.metafile));
