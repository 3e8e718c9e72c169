import { CountersignApiError, CountersignNetworkError, type ProblemBody } from './errors.ts';

export type TransportOptions = {
  /** Base URL of the API, e.g. http://127.0.0.1:8080. */
  url: string;
  apiKey: string;
  /** Attempts for a request that may be retried (network errors, 429, 502-504). Default 4. */
  attempts?: number;
  /** Per-attempt timeout, ms. Default 30 000 (long polls add their wait). */
  timeoutMs?: number;
  fetch?: typeof fetch;
  /** Base back-off between attempts, ms (doubles each time, capped at 5 s). Default 200. */
  backoffMs?: number;
};

export type RequestOptions = {
  /** Only requests that are safe to repeat are retried: reads, and writes that carry an idempotency key. */
  retry?: boolean;
  query?: Record<string, string | number | undefined>;
  /** Extra time for this request (long polls). */
  extraTimeoutMs?: number;
  signal?: AbortSignal;
  /** Called with the headers of the successful response (e.g. to read `Idempotent-Replayed`). */
  onHeaders?: (headers: Headers) => void;
};

const RETRY_STATUS = new Set([429, 502, 503, 504]);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The one HTTP path of the SDK and the CLI: JSON in, JSON out, problem+json as CountersignApiError. */
export class Transport {
  private readonly base: string;
  private readonly doFetch: typeof fetch;
  constructor(private readonly opts: TransportOptions) {
    if (!opts.url) throw new Error('Countersign URL is required');
    this.base = opts.url.replace(/\/+$/, '');
    this.doFetch = opts.fetch ?? fetch;
  }

  async request<T>(method: string, path: string, body?: unknown, ro: RequestOptions = {}): Promise<T> {
    const attempts = ro.retry === false ? 1 : Math.max(1, this.opts.attempts ?? 4);
    const qs = ro.query ? Object.entries(ro.query).filter(([, v]) => v !== undefined).map(([k, v]) => `${encodeURIComponent(k)}=${encodeURIComponent(String(v))}`).join('&') : '';
    const url = `${this.base}${path}${qs ? `?${qs}` : ''}`;
    let lastError: unknown;
    for (let attempt = 1; attempt <= attempts; attempt++) {
      const timeout = AbortSignal.timeout((this.opts.timeoutMs ?? 30_000) + (ro.extraTimeoutMs ?? 0));
      let res: Response;
      try {
        res = await this.doFetch(url, {
          method,
          headers: { authorization: `Bearer ${this.opts.apiKey}`, accept: 'application/json', ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
          body: body === undefined ? undefined : JSON.stringify(body),
          signal: ro.signal ? AbortSignal.any([ro.signal, timeout]) : timeout,
        });
      } catch (err) {
        if (ro.signal?.aborted) throw err;
        lastError = err;
        if (attempt < attempts) await sleep(this.backoff(attempt));
        continue;
      }
      const text = await res.text();
      if (res.ok) {
        ro.onHeaders?.(res.headers);
        return (text ? JSON.parse(text) : undefined) as T;
      }
      let problem: ProblemBody;
      try {
        problem = JSON.parse(text) as ProblemBody;
      } catch {
        problem = { status: res.status, detail: text.slice(0, 500) };
      }
      const error = new CountersignApiError(res.status, problem, res.headers.get('x-request-id') ?? undefined);
      if (!RETRY_STATUS.has(res.status) || attempt === attempts) throw error;
      lastError = error;
      const retryAfter = Number(res.headers.get('retry-after'));
      await sleep(Number.isFinite(retryAfter) && retryAfter > 0 ? Math.min(retryAfter * 1000, 30_000) : this.backoff(attempt));
    }
    if (lastError instanceof CountersignApiError) throw lastError;
    throw new CountersignNetworkError(`could not reach ${this.base} (${attempts} attempt${attempts > 1 ? 's' : ''}): ${(lastError as Error)?.message ?? String(lastError)}`, { cause: lastError });
  }

  private backoff(attempt: number): number {
    return Math.min((this.opts.backoffMs ?? 200) * 2 ** (attempt - 1), 5_000);
  }
}
