import { hasZodFastifySchemaValidationErrors } from 'fastify-type-provider-zod';
import { CountersignError, ERROR_CODES, type ErrorCode, type FieldError } from '../errors.ts';

export type Problem = {
  type: string;
  title: string;
  status: number;
  code: ErrorCode;
  detail: string;
  instance?: string;
  errors?: FieldError[];
  [extra: string]: unknown;
};

const FASTIFY_CODES: Record<string, ErrorCode> = {
  FST_ERR_CTP_BODY_TOO_LARGE: 'payload_too_large',
  FST_ERR_CTP_INVALID_MEDIA_TYPE: 'unsupported_media_type',
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: 'bad_request',
  FST_ERR_CTP_EMPTY_JSON_BODY: 'bad_request',
  FST_ERR_CTP_INVALID_JSON_BODY: 'bad_request',
};

/** Turns anything thrown into problem+json (RFC 9457). Unknown errors become a bare 500: no internals leak. */
export function toProblem(err: unknown, requestId: string): Problem {
  const make = (code: ErrorCode, detail: string, more: Partial<Problem> = {}): Problem => ({
    type: `urn:countersign:problem:${code}`,
    title: ERROR_CODES[code].title,
    status: ERROR_CODES[code].status,
    code,
    detail,
    instance: requestId,
    ...more,
  });
  if (err instanceof CountersignError) {
    return make(err.code, err.message, { ...(err.errors ? { errors: err.errors } : {}), ...err.extra });
  }
  if (hasZodFastifySchemaValidationErrors(err)) {
    const errors = err.validation.map((v) => {
      const at = [err.validationContext, ...v.instancePath.split('/').filter(Boolean)].filter(Boolean).join('.');
      const keys = (v.params as { keys?: string[] }).keys;
      if (v.keyword === 'unrecognized_keys' && keys?.length) {
        return { path: `${at ? `${at}.` : ''}${keys[0]}`, message: `unknown field${keys.length > 1 ? 's' : ''}: ${keys.join(', ')}` };
      }
      return { path: at || '(root)', message: v.message ?? 'invalid' };
    });
    return make('validation_failed', errors.map((e) => `${e.path}: ${e.message}`).join('; '), { errors });
  }
  const e = err as { code?: string; statusCode?: number; message?: string };
  if (e.code && FASTIFY_CODES[e.code]) return make(FASTIFY_CODES[e.code]!, e.message ?? '');
  if (e instanceof SyntaxError || e.code === 'FST_ERR_CTP_INVALID_JSON_BODY') return make('bad_request', `body is not valid JSON: ${e.message ?? ''}`);
  if (typeof e.statusCode === 'number' && e.statusCode >= 400 && e.statusCode < 500) {
    const code: ErrorCode = e.statusCode === 404 ? 'not_found' : e.statusCode === 413 ? 'payload_too_large' : e.statusCode === 415 ? 'unsupported_media_type' : 'bad_request';
    return make(code, e.message ?? '');
  }
  return make('internal', 'internal error; the request id identifies it in the logs');
}
