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

// Help and usage text (yargs renders it with cliui and string-width) load on
// first use: a capture or an extcap query never prints help, and evaluating
// them (string-width builds an Intl.Segmenter) cost ~10 ms of every start.
// Each bare import of these becomes a function that loads the module when
// first called; both modules export one function.
const lazyHelp = {
  name: 'lazy-help',
  setup(b) {
    b.onResolve({ filter: /^(cliui|string-width)$/ }, async (args) => {
      if (args.pluginData === 'real') return undefined;
      const real = await b.resolve(args.path, {
        kind: args.kind,
        importer: args.importer,
        resolveDir: args.resolveDir,
        pluginData: 'real',
      });
      if (real.errors.length) return { errors: real.errors };
      return { path: real.path, namespace: 'lazy-help' };
    });
    b.onLoad({ filter: /.*/, namespace: 'lazy-help' }, (args) => ({
      contents: `let f;
export default function (...a) {
  f ??= require(${JSON.stringify(args.path)}).default;
  return f.apply(this, a);
}`,
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
  plugins: [lazyHelp],
  logLevel: 'warning',
});
writeFileSync(`${outfile}.meta.json`, JSON.stringify(result.metafile));
