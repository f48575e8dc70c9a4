import { execFile } from 'node:child_process';
import { buildGlobalHeader, LINKTYPE_LINUX_SLL } from '../pcap/format.ts';
import { localTcpdumpPath } from '../tcpdump/index.ts';

/** Compiles the filter with the embedded tcpdump, reading a header-only pcap: no capture, no privileges. */
export async function checkFilter(filter: string): Promise<string | undefined> {
  if (!filter.trim()) return undefined;
  const tcpdump = await localTcpdumpPath();
  return new Promise((resolve) => {
    const child = execFile(
      tcpdump,
      ['-d', '-r', '-', '--', filter],
      { timeout: 5000, maxBuffer: 4 * 1024 * 1024 },
      (error, _stdout, stderr) => {
        if (!error) return resolve(undefined);
        const said = stderr
          .split('\n')
          .filter((l) => l && !l.startsWith('reading from file'))
          .map((l) => l.replace(/^[^:\s]*tcpdump[^:\s]*: /, ''))
          .join(' ');
        resolve(said || 'invalid capture filter');
      },
    );
    child.stdin?.on('error', () => {});
    child.stdin?.end(buildGlobalHeader(LINKTYPE_LINUX_SLL));
  });
}
