import { KubedumpError } from '../errors.ts';
import type { ExecResult } from '../kube/exec.ts';
import type { CaptureMode } from './capture-mode.ts';
import { hostNetnsRefusal } from './remote-scripts.ts';
import { tcpdumpFailure } from './tcpdump-command.ts';

// Why a capture that nobody stopped ended: a pure function of what the
// remote side reported and of what is known about the pod, so every
// ending's message is tested without a cluster.

export interface RemoteEnding {
  result: ExecResult;
  /** A pcap header arrived: tcpdump ran. */
  gotHeader: boolean;
  /** For messages: where tcpdump ran. */
  where: string;
  mode: CaptureMode['name'];
  /** "pod NS/NAME" when the pod is gone or being deleted. */
  podGone?: string | undefined;
}

/** True when the remote side ended in a way the user must hear about. */
export function endedBadly(ending: Pick<RemoteEnding, 'result' | 'gotHeader'>): boolean {
  return ending.result.exitCode !== 0 || !ending.gotHeader;
}

/** The one error that says what happened; undefined when tcpdump ended well. */
export function endingError(ending: RemoteEnding): KubedumpError | undefined {
  if (!endedBadly(ending)) return undefined;
  const { result, where } = ending;
  // A capture labelled as the pod never holds the node's traffic.
  const refused = hostNetnsRefusal(result.stderr, where);
  if (refused) return refused;
  if (ending.podGone) {
    return new KubedumpError('POD_DELETED', `${ending.podGone} was deleted during the capture`, {
      hint: 'the output holds what arrived before; capture again once the pod runs',
    });
  }
  if (result.exitCode === null && !result.message) {
    return new KubedumpError(
      'CONNECTION_LOST',
      `the connection to the API server was lost while capturing in ${where}`,
      {
        hint: 'the output holds what arrived before; check the network and the API server, then capture again',
      },
    );
  }
  // The status message repeats the whole command line: only use it when
  // there is no exit code to go by.
  return tcpdumpFailure(
    result.exitCode === null ? `${result.stderr}\n${result.message ?? ''}` : result.stderr,
    result.exitCode,
    where,
    ending.mode,
  );
}
