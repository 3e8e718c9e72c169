/**
 * The inbox's live updates: `GET /v1/approvals/stream` (server-sent events, authenticated by the session
 * cookie) says when a round opens or closes; each `round` event makes the inbox read `/v1/approvals` again.
 * When the stream is unavailable (an API without the route answers 404, a proxy that buffers, a dropped
 * connection) the inbox polls instead, and tries the stream again later. No DOM here beyond the EventSource
 * shape, so the states are unit-tested with a fake source.
 */

/** Where the inbox gets its updates from: the stream, or polling while the stream is not open. */
export type StreamMode = 'live' | 'polling';

/** One `event: round` of the stream. Read only to refresh: the inbox reads every fact again from /v1/approvals. */
export type RoundEvent = { id: string; kind: string; status: string; reason?: string | undefined };

/** The part of EventSource this uses (the browser's, or a test's fake). */
export interface StreamSource {
  readonly readyState: number;
  onopen: ((ev: unknown) => unknown) | null;
  onerror: ((ev: unknown) => unknown) | null;
  addEventListener(type: 'round', listener: (ev: { data: string }) => void): void;
  close(): void;
}

export const STREAM_PATH = '/v1/approvals/stream';
/** EventSource.CLOSED: the browser gave up on the stream (a non-200 answer, a wrong content type). */
const CLOSED = 2;
/** How long to poll before trying a closed stream again. */
export const STREAM_RETRY_MS = 60_000;

export type StreamHandlers = {
  /** The inbox should read /v1/approvals again (a round changed, or the stream (re)opened and may have missed some). */
  onChange: (event: RoundEvent | null) => void;
  onMode: (mode: StreamMode) => void;
};

export type StreamDeps = {
  open: (path: string) => StreamSource;
  setTimer: (fn: () => void, ms: number) => unknown;
  clearTimer: (t: unknown) => void;
};

/** A round event's data, or null when it is not one (the stream is then still a reason to refresh). */
export function parseRoundEvent(data: string): RoundEvent | null {
  try {
    const v: unknown = JSON.parse(data);
    if (typeof v !== 'object' || v === null) return null;
    const o = v as Record<string, unknown>;
    if (typeof o['id'] !== 'string' || typeof o['kind'] !== 'string' || typeof o['status'] !== 'string') return null;
    return { id: o['id'], kind: o['kind'], status: o['status'], ...(typeof o['reason'] === 'string' ? { reason: o['reason'] } : {}) };
  } catch {
    return null;
  }
}

/**
 * Watches the stream until the returned function is called. Mode is `polling` until the stream opens, again
 * whenever it errors (the browser reconnects by itself unless the answer was final, such as a 404: then the
 * stream is tried again after STREAM_RETRY_MS), and `live` while it is open.
 */
export function watchApprovalStream(deps: StreamDeps, handlers: StreamHandlers): () => void {
  let source: StreamSource | null = null;
  let retry: unknown = null;
  let stopped = false;
  let mode: StreamMode | null = null;
  const setMode = (m: StreamMode) => {
    if (m === mode) return;
    mode = m;
    handlers.onMode(m);
  };
  const connect = () => {
    retry = null;
    if (stopped) return;
    let s: StreamSource;
    try {
      s = deps.open(STREAM_PATH);
    } catch {
      setMode('polling');
      retry = deps.setTimer(connect, STREAM_RETRY_MS);
      return;
    }
    source = s;
    s.onopen = () => {
      setMode('live');
      // Whatever changed while the stream was not open is read now.
      handlers.onChange(null);
    };
    s.onerror = () => {
      setMode('polling');
      if (s.readyState === CLOSED) {
        s.close();
        if (source === s) source = null;
        if (!stopped && retry === null) retry = deps.setTimer(connect, STREAM_RETRY_MS);
      }
    };
    s.addEventListener('round', (ev) => handlers.onChange(parseRoundEvent(ev.data)));
  };
  setMode('polling');
  connect();
  return () => {
    stopped = true;
    if (retry !== null) deps.clearTimer(retry);
    source?.close();
    source = null;
  };
}

/** The browser's EventSource and timers. */
export const browserStreamDeps: StreamDeps = {
  open: (path) => new EventSource(path, { withCredentials: true }) as unknown as StreamSource,
  setTimer: (fn, ms) => setTimeout(fn, ms),
  clearTimer: (t) => clearTimeout(t as ReturnType<typeof setTimeout>),
};
