// Image names -> local rootfs directories (no registry is reachable, so nothing is pulled).
import { constants } from 'node:fs';
import { access, chmod, link, mkdir, rename, rm, writeFile } from 'node:fs/promises';
import { must } from './command.ts';

/** Where scripts/images puts rootfs trees: `<root>/<short>/rootfs`. */
export const IMAGE_ROOT = '/var/cache/kubedump/images';
/** Stand-in trees built from Debian's busybox-static when scripts/images has not run. */
const DEV_ROOT = '/var/cache/kubedump/emu-dev-images';

export interface ImageConfig {
  user?: string;
  entrypoint?: string[];
  cmd?: string[];
  env?: string[];
  workingDir?: string;
}

export interface Image {
  name: string;
  short: string;
  rootfs: string;
  config: ImageConfig;
}

const PATH_ENV = 'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

// The configs scripts/images gives its images; used when the OCI archive cannot be read.
const DEFAULTS: Record<string, ImageConfig> = {
  busybox: { cmd: ['sh'], env: [PATH_ENV], workingDir: '/' },
  nonroot: {
    cmd: ['sh'],
    user: '1000:1000',
    env: [PATH_ENV, 'HOME=/home/user'],
    workingDir: '/home/user',
  },
  distroless: { entrypoint: ['/server'], cmd: ['8080'], env: [PATH_ENV], workingDir: '/' },
  debian: { cmd: ['bash'], env: [PATH_ENV], workingDir: '/' },
  pause: { entrypoint: ['/pause'], env: [PATH_ENV], workingDir: '/' },
};

// The stand-in trees differ where busybox has to play the part.
const DEV_CONFIG: Record<string, ImageConfig> = {
  ...DEFAULTS,
  nonroot: { cmd: ['sh'], user: '1000:1000', env: [PATH_ENV], workingDir: '/' },
  distroless: { entrypoint: ['/httpd', '-f', '-p', '8080', '-h', '/www'], env: [PATH_ENV] },
};

/** Short name for an image reference, or undefined when this machine has no such image. */
export function shortName(image: string): string | undefined {
  const ref = image.replace(/@sha256:[0-9a-f]+$/, '');
  const m = /^(?:(?:docker\.io|registry-1\.docker\.io)\/)?(?:library\/)?([^:]+)(?::(.+))?$/.exec(
    ref,
  );
  const repo = m?.[1] ?? ref;
  if (repo === 'busybox') return 'busybox';
  if (repo === 'localhost/kubedump/distroless') return 'distroless';
  if (repo === 'localhost/kubedump/nonroot') return 'nonroot';
  if (repo === 'localhost/kubedump/debian') return 'debian';
  if (repo === 'localhost/kubedump/busybox') return 'busybox';
  if (/(^|\/)pause$/.test(repo)) return 'pause';
  return undefined;
}

async function exists(p: string): Promise<boolean> {
  try {
    await access(p, constants.F_OK);
    return true;
  } catch {
    return false;
  }
}

/** The image config from `<short>.tar` (OCI layout: index.json -> manifest -> config). */
async function readConfig(short: string): Promise<ImageConfig> {
  const tar = `${IMAGE_ROOT}/${short}.tar`;
  try {
    const blob = async (name: string) =>
      JSON.parse(await must('tar', ['-xOf', tar, name])) as Record<string, unknown>;
    const digestOf = (d: unknown) => `blobs/sha256/${String(d).replace(/^sha256:/, '')}`;
    const index = (await blob('index.json')) as { manifests: { digest: string }[] };
    const manifest = (await blob(digestOf(index.manifests[0]?.digest))) as {
      config: { digest: string };
    };
    const image = (await blob(digestOf(manifest.config.digest))) as {
      config?: Record<string, unknown>;
    };
    const c = image.config ?? {};
    const out: ImageConfig = {};
    if (typeof c.User === 'string' && c.User) out.user = c.User;
    if (Array.isArray(c.Entrypoint)) out.entrypoint = c.Entrypoint as string[];
    if (Array.isArray(c.Cmd)) out.cmd = c.Cmd as string[];
    if (Array.isArray(c.Env)) out.env = c.Env as string[];
    if (typeof c.WorkingDir === 'string' && c.WorkingDir) out.workingDir = c.WorkingDir;
    return out;
  } catch {
    return DEFAULTS[short] ?? {};
  }
}

const configs = new Map<string, Promise<ImageConfig>>();
const building = new Map<string, Promise<string>>();

export async function resolveImage(image: string): Promise<Image | undefined> {
  const short = shortName(image);
  if (!short) return undefined;
  const shared = `${IMAGE_ROOT}/${short}`;
  if (await exists(`${shared}/rootfs`)) {
    let config = configs.get(short);
    if (!config) {
      config = readConfig(short);
      configs.set(short, config);
    }
    return { name: image, short, rootfs: `${shared}/rootfs`, config: await config };
  }
  let p = building.get(short);
  if (!p) {
    p = buildDevImage(short);
    building.set(short, p);
  }
  return { name: image, short, rootfs: await p, config: DEV_CONFIG[short] ?? {} };
}

async function buildDevImage(short: string): Promise<string> {
  const final = `${DEV_ROOT}/${short}/rootfs`;
  if (await exists(`${final}/.complete`)) return final;
  const busybox = '/usr/bin/busybox';
  if (!(await exists(busybox))) {
    throw new Error('busybox-static is missing: run test/emulator/setup');
  }
  if (short === 'debian') {
    // A real Debian root filesystem has no busybox stand-in.
    throw new Error(`the Debian image is missing (${IMAGE_ROOT}/debian): run scripts/images build`);
  }
  const tmp = `${DEV_ROOT}/${short}/rootfs.${process.pid}`;
  await rm(tmp, { recursive: true, force: true });
  for (const d of ['bin', 'etc', 'proc', 'sys', 'dev', 'tmp', 'root', 'www', 'var']) {
    await mkdir(`${tmp}/${d}`, { recursive: true });
  }
  await chmod(`${tmp}/tmp`, 0o1777);
  await writeFile(
    `${tmp}/etc/passwd`,
    'root:x:0:0:root:/root:/bin/sh\nuser:x:1000:1000::/tmp:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n',
  );
  await writeFile(`${tmp}/etc/group`, 'root:x:0:\nuser:x:1000:\nnogroup:x:65534:\n');
  await writeFile(`${tmp}/www/index.html`, `${short}\n`);
  if (short === 'distroless') {
    // One static server binary and nothing else: no shell, no tar.
    await must('cp', [busybox, `${tmp}/httpd`]);
  } else if (short === 'pause') {
    await must('cp', [busybox, `${tmp}/bin/busybox`]);
    await writeFile(`${tmp}/pause`, '#!/bin/busybox sh\nexec /bin/busybox sleep 2147483647\n', {
      mode: 0o755,
    });
  } else {
    await must('cp', [busybox, `${tmp}/bin/busybox`]);
    const applets = (await must(busybox, ['--list']))
      .split('\n')
      .filter((a) => /^[\w.-]+$/.test(a));
    for (const a of applets) {
      if (a === 'busybox') continue;
      await link(`${tmp}/bin/busybox`, `${tmp}/bin/${a}`).catch(() => {});
    }
  }
  await writeFile(`${tmp}/.complete`, '');
  await rm(final, { recursive: true, force: true });
  await mkdir(`${DEV_ROOT}/${short}`, { recursive: true });
  await rename(tmp, final);
  return final;
}
