import { KubedumpError } from '../errors.ts';
import { archFromNode, tcpdumpBinary, tcpdumpManifest } from '../tcpdump/index.ts';
import type { CaptureMode, ModeContext, Placement } from './mode.ts';
import { probeContainer, removeUploaded, uploadExecutable } from './upload.ts';

// Unprivileged mode: tcpdump runs inside the target container itself, as the
// container's user, so it needs root or CAP_NET_RAW there, and /bin/sh.

export const unprivilegedMode: CaptureMode = {
  name: 'unprivileged',
  async prepare(ctx: ModeContext): Promise<Placement> {
    const { kc, target, log, signal } = ctx;
    const exec = { namespace: target.namespace, pod: target.pod, container: target.container };
    const manifest = tcpdumpManifest();
    // The node's architecture decides the binary; a probe sees the container's too.
    const [nodeArch, probeAmd64] = await Promise.all([
      ctx.nodeArchitecture(),
      probeContainer(
        kc,
        exec,
        binaryName(manifest.binaries.amd64.sha256),
        manifest.binaries.amd64.sha256,
        signal,
      ),
    ]);
    const arch = archFromNode(nodeArch ?? probeAmd64.arch);
    if (!arch) {
      throw new KubedumpError(
        'UNSUPPORTED_ARCH',
        `no tcpdump for CPU architecture "${nodeArch ?? probeAmd64.arch}"`,
        {
          hint: 'kubedump ships tcpdump for amd64 and arm64',
        },
      );
    }
    const { sha256 } = manifest.binaries[arch];
    const name = binaryName(sha256);
    const probe =
      arch === 'amd64' ? probeAmd64 : await probeContainer(kc, exec, name, sha256, signal);
    const binary = `${probe.dir.replace(/\/$/, '')}/${name}`;
    // Registered before the upload: a stop during it must not leave the file
    // (or its temporary) behind; the remote side may finish after we stop.
    if (!ctx.request.keepBinary) {
      ctx.cleanup.defer(() => removeUploaded(kc, exec, probe.dir, name, log));
    }
    if (probe.state === 'present') {
      log.info('tcpdump already present', { binary });
    } else {
      const started = Date.now();
      await uploadExecutable(kc, exec, probe, name, tcpdumpBinary(arch), signal);
      log.info('tcpdump uploaded', { binary, ms: Date.now() - started, tar: probe.hasTar });
    }
    return {
      exec,
      binary,
      prefix: [],
      where: `pod ${target.namespace}/${target.pod}`,
    };
  },
};

/** The uploaded file's name carries its hash, so versions never collide. */
export function binaryName(sha256: string): string {
  return `kubedump-tcpdump-${sha256.slice(0, 12)}`;
}
