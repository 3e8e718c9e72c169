import { pino, stdSerializers, stdTimeFunctions, type Logger } from 'pino';
import { scrubSecrets, serializeRequest } from './log-redaction.ts';

/**
 * The one logger of every process (API, worker, publisher, MCP gateway): pino, JSON lines, with the same
 * redaction everywhere. Headers that carry credentials are censored by path, requests are logged by method
 * and redacted URL only (never bodies or headers), and every finished line is scrubbed of API keys, emailed
 * link tokens, bearer credentials, Slack tokens and URL passwords before it is written (log-redaction.ts).
 * Callers pass fields, never secrets: keys, tokens and tool args stay out.
 */
export type Level = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';

/** A line writer: standard error by default (the API's Fastify log goes to standard output, as before). */
type Sink = { write: (line: string) => unknown };

const REDACT = ['req.headers.authorization', 'req.headers.cookie', 'req.headers["x-api-key"]', 'req.headers["x-slack-signature"]', 'headers.authorization', 'headers.cookie'];

/** The pino logger of a component (Fastify takes it as its `loggerInstance`). */
export function createPinoLogger(component: string, level: Level = 'info', sink: Sink = process.stderr): Logger {
  return pino({
    level,
    base: { component },
    timestamp: stdTimeFunctions.isoTime,
    formatters: { level: (label) => ({ level: label }) },
    redact: { paths: REDACT, censor: '[redacted]' },
    serializers: {
      err: stdSerializers.err,
      req: serializeRequest,
      res: (reply: { statusCode?: number }) => ({ statusCode: reply.statusCode }),
    },
  }, { write: (line: string) => sink.write(scrubSecrets(line)) });
}

/** What most of our code logs through: a level, a message and plain fields. */
export type LogFn = (level: 'info' | 'warn' | 'error' | 'debug', msg: string, fields?: Record<string, unknown>) => void;

export function createLogger(component: string, level: Level = 'info', sink?: Sink): LogFn {
  return logFnOf(createPinoLogger(component, level, sink));
}

/** A LogFn over an existing pino logger (a Fastify request's, say). */
export function logFnOf(logger: Logger): LogFn {
  return (lvl, msg, fields) => (fields ? logger[lvl](fields, msg) : logger[lvl](msg));
}
