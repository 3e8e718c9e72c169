import { createServer, connect, type Server, type Socket } from 'node:net';

/**
 * A TCP proxy in front of one of the shared dependencies, which a test may close (connections refused),
 * reopen, or cut (every open connection reset, as a restart of the dependency does) without touching the
 * dependency itself, which other tests are using.
 */
export class TcpProxy {
  private server: Server | null = null;
  private readonly sockets = new Set<Socket>();
  cuts = 0;
  constructor(readonly port: number, private readonly target: { host: string; port: number }) {}

  get address(): string {
    return `127.0.0.1:${this.port}`;
  }

  async open(): Promise<void> {
    if (this.server) return;
    const server = createServer((client) => {
      const upstream = connect(this.target.port, this.target.host);
      for (const s of [client, upstream]) {
        this.sockets.add(s);
        s.on('close', () => this.sockets.delete(s));
        s.on('error', () => { client.destroy(); upstream.destroy(); });
      }
      client.pipe(upstream);
      upstream.pipe(client);
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.port, '127.0.0.1', () => resolve());
    });
    this.server = server;
  }

  /** Resets every connection going through (the dependency "restarted"); new ones are still accepted. */
  cut(): void {
    this.cuts += 1;
    for (const s of this.sockets) s.resetAndDestroy();
    this.sockets.clear();
  }

  /** Cuts every connection and stops listening: the dependency is down. */
  async close(): Promise<void> {
    const server = this.server;
    this.server = null;
    this.cut();
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}

/** host:port of a URL or of a bare address. */
export function hostPort(address: string): { host: string; port: number } {
  const u = address.includes('://') ? new URL(address) : new URL(`tcp://${address}`);
  return { host: u.hostname, port: Number(u.port) };
}

/** The same Postgres URL, through a proxy's port. */
export function throughPort(url: string, port: number): string {
  const u = new URL(url);
  u.hostname = '127.0.0.1';
  u.port = String(port);
  return u.toString();
}
