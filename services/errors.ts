/**
 * One error table (style item 12). Everything that fails on purpose throws a CountersignError with a code
 * from this table; the API turns it into problem+json (RFC 9457), the CLI into a message and exit code.
 */
export const ERROR_CODES = {
  bad_request: { status: 400, title: 'The request is malformed' },
  validation_failed: { status: 400, title: 'The request failed validation' },
  unauthorized: { status: 401, title: 'Missing or invalid API key' },
  forbidden: { status: 403, title: 'Your role does not allow this' },
  agent_mismatch: { status: 403, title: 'Your key does not decide as this agent' },
  platform_principal: { status: 403, title: 'Only platform admins manage platform principals' },
  platform_policy: { status: 403, title: 'Platform policies are changed by platform admins only' },
  not_found: { status: 404, title: 'Not found' },
  conflict: { status: 409, title: 'Conflict with the current state' },
  payload_too_large: { status: 413, title: 'The request body is too large' },
  unsupported_media_type: { status: 415, title: 'Unsupported content type' },
  answer_refused: { status: 409, title: 'The answer was not counted' },
  idempotency_mismatch: { status: 422, title: 'Idempotency key reused with a different request' },
  unprocessable: { status: 422, title: 'The request cannot be processed' },
  rate_limited: { status: 429, title: 'Too many requests' },
  internal: { status: 500, title: 'Internal error' },
  dependency_unavailable: { status: 503, title: 'A dependency is unavailable' },
} as const;
export type ErrorCode = keyof typeof ERROR_CODES;

export type FieldError = { path: string; message: string };

export class CountersignError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  readonly errors: FieldError[] | undefined;
  readonly extra: Record<string, unknown>;

  constructor(code: ErrorCode, detail: string, opts: { errors?: FieldError[]; extra?: Record<string, unknown>; cause?: unknown } = {}) {
    super(detail, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = 'CountersignError';
    this.code = code;
    this.status = ERROR_CODES[code].status;
    this.errors = opts.errors;
    this.extra = opts.extra ?? {};
  }

  static dependency(dependency: 'postgres' | 'temporal' | 'kafka', cause?: unknown): CountersignError {
    return new DependencyUnavailable(dependency, cause);
  }
}

/**
 * Transient, unlike every other CountersignError: Temporal takes an activity failure's type from the error's
 * constructor name, and activities retry everything but 'CountersignError' (workflows/). A Postgres restart
 * during an append must be retried, not end the run; a class of its own gives it a type of its own.
 */
export class DependencyUnavailable extends CountersignError {
  constructor(dependency: 'postgres' | 'temporal' | 'kafka', cause?: unknown) {
    super('dependency_unavailable', `${dependency} is unavailable`, { extra: { dependency }, cause });
    this.name = 'DependencyUnavailable';
  }
}

/** Zod issues as field errors: the path in dotted form (`action.tool`, `context.risk_tags.0`). */
export function fieldErrors(issues: ReadonlyArray<{ path: ReadonlyArray<PropertyKey>; message: string; code?: string; keys?: string[] }>, prefix = ''): FieldError[] {
  return issues.map((i) => {
    const base = [prefix, ...i.path.map(String)].filter(Boolean).join('.');
    if (i.code === 'unrecognized_keys' && i.keys?.length) {
      return { path: [base, i.keys[0]].filter(Boolean).join('.'), message: `unknown field${i.keys.length > 1 ? 's' : ''}: ${i.keys.join(', ')}` };
    }
    return { path: base || '(root)', message: i.message };
  });
}
