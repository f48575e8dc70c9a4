import { type KubeConfig, Watch } from '@kubernetes/client-node';

// A watch that lasts: the client ends a watch after 30 s without an event
// (and servers end theirs after some minutes), so it is started again, from
// the last version seen, until `signal` aborts. Each new watch first replays
// what changed since; callers must accept an event they have seen before.

export function watchUntil(
  kc: KubeConfig,
  path: string,
  query: Record<string, string | undefined>,
  onEvent: (type: string, object: { metadata?: { resourceVersion?: string } }) => void,
  onError: (error: unknown) => void,
  signal: AbortSignal,
): void {
  let version = query.resourceVersion;
  let current: AbortController | undefined;
  signal.addEventListener('abort', () => current?.abort(), { once: true });
  const start = () => {
    if (signal.aborted) return;
    new Watch(kc)
      .watch(
        path,
        { ...query, resourceVersion: version },
        (type: string, object: { code?: number; metadata?: { resourceVersion?: string } }) => {
          // The server's "too old to replay" (410 Gone): the next watch starts from now.
          if (type === 'ERROR') {
            if (object?.code === 410) version = undefined;
            return;
          }
          version = object?.metadata?.resourceVersion ?? version;
          onEvent(type, object);
        },
        (error: unknown) => {
          if (signal.aborted) return;
          // A version too old to replay (410 Gone): start from now.
          if ((error as { statusCode?: number })?.statusCode === 410) version = undefined;
          else if (error && !/timeout/i.test(String((error as Error)?.message ?? error)))
            onError(error);
          setTimeout(start, 1000).unref();
        },
      )
      .then(
        (controller) => {
          current = controller;
          if (signal.aborted) controller.abort();
        },
        (error) => {
          onError(error);
          if (!signal.aborted) setTimeout(start, 1000).unref();
        },
      );
  };
  start();
}
