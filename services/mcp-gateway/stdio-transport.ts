import type { Readable, Writable } from 'node:stream';
import { JSONRPCMessageSchema, type JSONRPCMessage } from '@modelcontextprotocol/sdk/types.js';
import type { Transport } from '@modelcontextprotocol/sdk/shared/transport.js';

/** Longest line read from the client; a longer one is answered with a parse error and dropped. */
const MAX_LINE_BYTES = 10 * 1024 * 1024;

/**
 * The stdio server transport (newline-delimited JSON-RPC on stdin/stdout), answering malformed input the way
 * JSON-RPC 2.0 says: text that is not JSON gets -32700 Parse error, JSON that is not a JSON-RPC message gets
 * -32600 Invalid Request (with the request's id when it has a usable one, else null). The SDK's own stdio
 * transport drops such lines silently. Nothing malformed reaches the server, so nothing reaches an upstream.
 */
export class StrictStdioServerTransport implements Transport {
  onclose?: () => void;
  onerror?: (error: Error) => void;
  onmessage?: (message: JSONRPCMessage) => void;
  private buffer = '';
  private closed = false;

  constructor(private readonly input: Readable = process.stdin, private readonly output: Writable = process.stdout) {}

  async start(): Promise<void> {
    this.input.setEncoding('utf8');
    this.input.on('data', this.onData);
    this.input.on('end', this.onEnd);
    this.input.on('error', this.onStreamError);
  }

  private readonly onData = (chunk: string) => {
    this.buffer += chunk;
    for (let nl = this.buffer.indexOf('\n'); nl !== -1; nl = this.buffer.indexOf('\n')) {
      const line = this.buffer.slice(0, nl).replace(/\r$/, '');
      this.buffer = this.buffer.slice(nl + 1);
      if (line.trim() !== '') this.handleLine(line);
    }
    if (Buffer.byteLength(this.buffer) > MAX_LINE_BYTES) {
      this.buffer = '';
      this.reject(null, -32700, `Parse error: a message longer than ${MAX_LINE_BYTES} bytes`);
    }
  };

  private readonly onEnd = () => { void this.close(); };
  private readonly onStreamError = (err: Error) => this.onerror?.(err);

  private handleLine(line: string): void {
    let value: unknown;
    try {
      value = JSON.parse(line);
    } catch {
      this.reject(null, -32700, 'Parse error: the message is not valid JSON');
      return;
    }
    const parsed = JSONRPCMessageSchema.safeParse(value);
    if (!parsed.success) {
      const id = typeof value === 'object' && value !== null && 'id' in value && (typeof value.id === 'string' || (typeof value.id === 'number' && Number.isFinite(value.id))) ? value.id : null;
      // A malformed response or notification (no id) gets no answer it could be confused with.
      this.reject(id, -32600, `Invalid Request: ${parsed.error.issues.slice(0, 3).map((i) => `${i.path.join('.') || '(message)'}: ${i.message}`).join('; ')}`);
      return;
    }
    this.onmessage?.(parsed.data);
  }

  private reject(id: string | number | null, code: number, message: string): void {
    this.write(`${JSON.stringify({ jsonrpc: '2.0', id, error: { code, message } })}\n`).catch(() => undefined);
  }

  private async write(text: string): Promise<void> {
    if (this.closed) return;
    await new Promise<void>((resolve, reject) => {
      this.output.write(text, (err) => (err ? reject(err) : resolve()));
    });
  }

  async send(message: JSONRPCMessage): Promise<void> {
    await this.write(`${JSON.stringify(message)}\n`);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.input.off('data', this.onData);
    this.input.off('end', this.onEnd);
    this.input.off('error', this.onStreamError);
    this.input.pause();
    this.onclose?.();
  }
}
