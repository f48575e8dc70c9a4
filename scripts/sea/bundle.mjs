// Bundles the CLI into one CommonJS file for the Node single executable.
// Usage: node scripts/sea/bundle.mjs ENTRY OUTFILE
import { readFileSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const [entry, outfile, shape] = process.argv.slice(2);
if (!entry || !outfile || (shape && shape !== '--function')) {
  console.error('usage: bundle.mjs ENTRY OUTFILE [--function]');
  process.exit(2);
}
const missing = fileURLToPath(new URL('missing-module.cjs', import.meta.url));
// Node 22 (the Windows executable) lacks AsyncDisposableStack: a guarded polyfill.
const polyfill = readFileSync(new URL('async-disposable-stack.js', import.meta.url), 'utf8');
const keepalive = readFileSync(new URL('keepalive-after-connect.js', import.meta.url), 'utf8');

// Modules that load on first use instead of at start.
// - Help and usage text (yargs renders it with cliui and string-width): a
//   capture or an extcap query never prints help, and evaluating them
//   (string-width builds an Intl.Segmenter) cost ~10 ms of every start. Both
//   export one function: the import becomes a function that loads the module
//   when first called.
// - undici, the Kubernetes client's fetch: evaluating it (and the built-in
//   modules it needs: http2, zlib, stream/web, worker_threads, perf_hooks)
//   cost ~25 ms of every start, yet a capture in unprivileged mode never
//   calls it (the pod's read and the exec use node:https). The client uses
//   three names, only when called: each becomes a getter that loads undici.
const LAZY = {
  cliui: 'default-function',
  'string-width': 'default-function',
  undici: ['fetch', 'Agent', 'ProxyAgent'],
};
const lazyContents = (path, shape) => {
  const real = `require(${JSON.stringify(path)})`;
  if (shape === 'default-function') {
    return `let f;
export default function (...a) {
  f ??= ${real}.default;
  return f.apply(this, a);
}`;
  }
  return shape
    .map((name) => `Object.defineProperty(exports, ${JSON.stringify(name)}, { enumerable: true, get: () => ${real}.${name} });`)
    .join('\n');
};
const lazyModules = {
  name: 'lazy-modules',
  setup(b) {
    const names = Object.keys(LAZY).map((n) => n.replace(/[-/]/g, '\\$&'));
    b.onResolve({ filter: new RegExp(`^(${names.join('|')})$`) }, async (args) => {
      if (args.pluginData === 'real') return undefined;
      const real = await b.resolve(args.path, {
        kind: args.kind,
        importer: args.importer,
        resolveDir: args.resolveDir,
        pluginData: 'real',
      });
      if (real.errors.length) return { errors: real.errors };
      return { path: real.path, namespace: 'lazy', pluginData: LAZY[args.path] };
    });
    b.onLoad({ filter: /.*/, namespace: 'lazy' }, (args) => ({
      contents: lazyContents(args.path, args.pluginData),
      resolveDir: dirname(args.path),
      loader: 'js',
    }));
  },
};

const result = await build({
  entryPoints: [entry],
  outfile,
  bundle: true,
  platform: 'node',
  format: 'cjs',
  target: 'node22',
  // A SEA's main script is CommonJS: import.meta does not exist there, yet
  // yargs calls createRequire(import.meta.url).
  // With --function the bundle is one function expression with CommonJS's
  // parameters, which scripts/sea/loader.cjs compiles as it is: wrapping it
  // there would copy the whole source once more, and the copy stays until a
  // full GC. Without, it runs under plain node (the benchmark's harnesses).
  banner: {
    js: `${shape ? '(function (exports, require, module, __filename, __dirname) {\n' : ''}${polyfill}\n${keepalive}\nconst __import_meta_url = require("node:url").pathToFileURL(__filename).href;`,
  },
  footer: { js: shape ? '})' : '' },
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
  plugins: [lazyModules],
  logLevel: 'warning',
});
writeFileSync(`${outfile}.meta.json`, JSON.stringify(result.metafile));
