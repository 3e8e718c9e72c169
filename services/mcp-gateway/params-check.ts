import type { Transport, TransportSendOptions } from '@modelcontextprotocol/sdk/shared/transport.js';
import {
  CallToolRequestSchema, CompleteRequestSchema, GetPromptRequestSchema, InitializeRequestSchema, isJSONRPCRequest, ListPromptsRequestSchema,
  ListResourcesRequestSchema, ListResourceTemplatesRequestSchema, ListToolsRequestSchema, PingRequestSchema, ReadResourceRequestSchema,
  SetLevelRequestSchema, SubscribeRequestSchema, UnsubscribeRequestSchema, type JSONRPCMessage, type MessageExtraInfo,
} from '@modelcontextprotocol/sdk/types.js';

const REQUESTS = new Map<string, { safeParse: (v: unknown) => { success: boolean; error?: { issues: Array<{ path: PropertyKey[]; message: string }> } } }>(
  [CallToolRequestSchema, CompleteRequestSchema, GetPromptRequestSchema, InitializeRequestSchema, ListPromptsRequestSchema, ListResourcesRequestSchema,
    ListResourceTemplatesRequestSchema, ListToolsRequestSchema, PingRequestSchema, ReadResourceRequestSchema, SetLevelRequestSchema, SubscribeRequestSchema,
    UnsubscribeRequestSchema].map((s) => [s.shape.method.value, s]),
);

/**
 * Wraps a server transport so a request whose params do not fit its method's schema is answered with
 * -32602 Invalid params (naming the fields) and never handed to the server: the SDK would answer -32603
 * Internal error with the raw validation dump.
 */
export class ParamsCheckingTransport implements Transport {
  onclose?: () => void;
  onerror?: (error: Error) => void;
  onmessage?: (message: JSONRPCMessage, extra?: MessageExtraInfo) => void;

  constructor(private readonly inner: Transport) {
    // Handlers the transport's owner set before wrapping (the HTTP session table's cleanup) keep running.
    const ownerClose = inner.onclose;
    const ownerError = inner.onerror;
    inner.onclose = () => { ownerClose?.(); this.onclose?.(); };
    inner.onerror = (e) => { ownerError?.(e); this.onerror?.(e); };
    inner.onmessage = (message, extra) => {
      if (isJSONRPCRequest(message)) {
        const schema = REQUESTS.get(message.method);
        const r = schema?.safeParse({ method: message.method, params: message.params });
        if (r && !r.success) {
          const detail = (r.error?.issues ?? []).slice(0, 3).map((i) => `${i.path.map(String).join('.')}: ${i.message}`).join('; ');
          inner.send({ jsonrpc: '2.0', id: message.id, error: { code: -32602, message: `Invalid params: ${detail}` } }).catch((e: unknown) => this.onerror?.(e as Error));
          return;
        }
      }
      this.onmessage?.(message, extra);
    };
  }

  get sessionId(): string | undefined {
    return this.inner.sessionId;
  }

  start(): Promise<void> {
    return this.inner.start();
  }

  send(message: JSONRPCMessage, options?: TransportSendOptions): Promise<void> {
    return this.inner.send(message, options);
  }

  close(): Promise<void> {
    return this.inner.close();
  }

  setProtocolVersion(version: string): void {
    this.inner.setProtocolVersion?.(version);
  }
}
