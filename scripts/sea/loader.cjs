// The single executable's main script. It runs the bundle (a SEA asset)
// through vm.Script with a V8 code cache that a training run made at build
// time. Node's own SEA code cache holds only what V8 compiles before the
// script runs; everything compiled lazily (module bodies, yargs, the
// Kubernetes client: most of a capture's start) was compiled again at every
// start. A cache is specific to the V8 that made it, so only the build host's
// own target carries one; the others compile as before.
//
// Two caches, by what was asked: Wireshark makes many short interface-list
// calls per start, and deserializing the capture path's larger cache would
// slow each of them down.
//
// Run by plain Node it trains: `node loader.cjs BUNDLE OUT ARGS...` runs the
// bundle with ARGS and, at exit, writes the code of what ran to OUT.
'use strict';
const vm = require('node:vm');
const sea = require('node:sea');

const EXTCAP_QUERY = /^--extcap-(interfaces|config|dlts|version|reload-option)\b/;

/** The cache asset for these arguments. */
function cacheAsset(args) {
  return args.some((a) => EXTCAP_QUERY.test(a)) ? 'code-cache-extcap' : 'code-cache-capture';
}

/** The bundle is one function expression with CommonJS's parameters (scripts/sea/bundle.mjs). */
function compile(source, filename, cachedData) {
  return new vm.Script(source, { filename, cachedData });
}

if (sea.isSea()) {
  // Raw assets are the executable's own mapped pages: read in place, not copied.
  let cachedData;
  try {
    cachedData = Buffer.from(sea.getRawAsset(cacheAsset(process.argv.slice(2))));
  } catch {
    // a target built without a cache
  }
  const script = compile(
    new TextDecoder().decode(sea.getRawAsset('kubedump.cjs')),
    __filename,
    cachedData,
  );
  // The build checks that V8 takes the cache (it silently compiles anew when not).
  if (process.env.KUBEDUMP_CODE_CACHE === 'check') {
    const state = !cachedData ? 'none' : script.cachedDataRejected ? 'rejected' : 'accepted';
    process.stderr.write(`code cache ${state}\n`);
  }
  script.runInThisContext()(exports, require, module, __filename, __dirname);
} else {
  const fs = require('node:fs');
  const path = require('node:path');
  const [bundle, out, ...args] = process.argv.slice(2);
  const script = compile(fs.readFileSync(bundle, 'utf8'), bundle);
  process.on('exit', () => fs.writeFileSync(out, script.createCachedData()));
  process.argv = [process.argv[0], bundle, ...args];
  script.runInThisContext()(exports, require, module, bundle, path.dirname(bundle));
}
