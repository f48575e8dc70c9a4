import { homedir } from 'node:os';
import { isAbsolute, posix, win32 } from 'node:path';

// Where kubedump keeps its files and where Wireshark looks for extcaps, per
// operating system. Everything is computed from an injected platform,
// environment and home folder so that each OS's choice can be tested here.

export interface Host {
  platform: NodeJS.Platform;
  env: NodeJS.ProcessEnv;
  home: string;
}

export function currentHost(env: NodeJS.ProcessEnv = process.env): Host {
  return { platform: process.platform, env, home: homedir() };
}

function pathOf(host: Host): typeof posix {
  return host.platform === 'win32' ? win32 : posix;
}

/** A folder from an environment variable if it is set and absolute, else the fallback. */
function fromEnv(host: Host, name: string, ...fallback: string[]): string {
  const path = pathOf(host);
  const value = host.env[name];
  return value && path.isAbsolute(value) ? value : path.join(host.home, ...fallback);
}

/** %LOCALAPPDATA% on Windows: not roamed between machines, the place for caches and logs. */
function localAppData(host: Host): string {
  return fromEnv(host, 'LOCALAPPDATA', 'AppData', 'Local');
}

export function configDir(host: Host): string {
  if (host.platform === 'win32') {
    return win32.join(fromEnv(host, 'APPDATA', 'AppData', 'Roaming'), 'kubedump');
  }
  return posix.join(fromEnv(host, 'XDG_CONFIG_HOME', '.config'), 'kubedump');
}

export function cacheDir(host: Host): string {
  if (host.platform === 'win32') return win32.join(localAppData(host), 'kubedump', 'cache');
  return posix.join(fromEnv(host, 'XDG_CACHE_HOME', '.cache'), 'kubedump');
}

export function defaultLogFile(host: Host): string {
  if (host.platform === 'win32') return win32.join(localAppData(host), 'kubedump', 'kubedump.log');
  return posix.join(fromEnv(host, 'XDG_STATE_HOME', '.local', 'state'), 'kubedump', 'kubedump.log');
}

/** The executable's file name in an extcap folder: Wireshark on Windows runs only .exe files there. */
export function executableName(host: Host): string {
  return host.platform === 'win32' ? 'kubedump.exe' : 'kubedump';
}

/**
 * The personal extcap folders to install into: the one `tshark -G folders`
 * names if tshark is on the PATH, else the usual ones of each OS.
 */
export function extcapFolders(host: Host, fromTshark: string | undefined): string[] {
  if (fromTshark) return [fromTshark];
  if (host.platform === 'win32') {
    return [win32.join(fromEnv(host, 'APPDATA', 'AppData', 'Roaming'), 'Wireshark', 'extcap')];
  }
  const config = host.env.WIRESHARK_CONFIG_DIR;
  return [
    // Wireshark 4.0 (Linux and macOS)
    config && isAbsolute(config)
      ? posix.join(config, 'extcap')
      : posix.join(host.home, '.config', 'wireshark', 'extcap'),
    // 4.2 and later
    posix.join(host.home, '.local', 'lib', 'wireshark', 'extcap'),
  ];
}

/** Every personal folder an earlier install may have used, for uninstall. */
export function knownExtcapFolders(host: Host): string[] {
  if (host.platform === 'win32') return extcapFolders(host, undefined);
  return [
    posix.join(host.home, '.config', 'wireshark', 'extcap'),
    posix.join(host.home, '.local', 'lib', 'wireshark', 'extcap'),
  ];
}
