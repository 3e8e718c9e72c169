// The console's typed client: paths and bodies come from the API's OpenAPI document (generated/api.d.ts, made
// by build.ts from the server's own route schemas), so a changed route breaks the console's typecheck.
import createClient, { type Middleware } from 'openapi-fetch';
import type { paths, components } from '../generated/api';

export type { paths, components };

/** The session's CSRF token, in memory only (never in storage): read again from the session after a reload. */
let csrfToken: string | null = null;
export const setCsrfToken = (t: string | null) => { csrfToken = t; };

const csrf: Middleware = {
  onRequest({ request }) {
    if (request.method !== 'GET' && request.method !== 'HEAD' && csrfToken) request.headers.set('x-csrf-token', csrfToken);
    return request;
  },
};

export const client = createClient<paths>({ baseUrl: window.location.origin, credentials: 'same-origin' });
client.use(csrf);

export type Problem = { status?: number; code?: string; title?: string; detail?: string; errors?: Array<{ path: string; message: string }> };

/** The API's problem document as an Error the pages show. */
export class ApiError extends Error {
  constructor(readonly problem: Problem, readonly status: number) {
    super(problem.detail ?? problem.title ?? `HTTP ${status}`);
  }
}

/** Unwraps an openapi-fetch answer: its data, or an ApiError with the problem. */
export function unwrap<T>(res: { data?: T; error?: unknown; response: Response }): T {
  if (res.error !== undefined || !res.response.ok) throw new ApiError((res.error ?? {}), res.response.status);
  return res.data!;
}
