import { readFileSync } from 'node:fs';
import type { Command } from 'commander';
import { Transport } from '../../sdk/transport.ts';
import { configPath, loadClientConfig, record, run, saveClientConfig, transport, UsageError } from './remote.ts';

type LoginOptions = { url?: string; key?: string; keyFile?: string; json?: boolean; web?: boolean };

const DEFAULT_URL = 'http://127.0.0.1:8080';

/**
 * `login --web`: a one-time console sign-in link for the person of the given key (or the saved one). The link's
 * token sits in the URL's fragment, which browsers never send to a server; it is spent by its first use.
 */
async function webLink(opts: LoginOptions): Promise<void> {
  const given = opts.key ?? (opts.keyFile ? readFileSync(opts.keyFile, 'utf8') : undefined);
  const config = given === undefined ? loadClientConfig() : { url: opts.url ?? DEFAULT_URL, api_key: given.trim() };
  const url = (opts.url ?? config.url).replace(/\/+$/, '');
  const link = await new Transport({ url, apiKey: config.api_key, attempts: 1 }).request<{ path: string; expires_at: string }>('POST', '/v1/console/links', {});
  const full = `${url}${link.path}`;
  if (opts.json) record(true, { url: full, expires_at: link.expires_at });
  else process.stdout.write(`Open this link to sign in to the console (once, before ${link.expires_at}):\n${full}\n`);
}

/** `countersign login` / `whoami`: where the API is and which key to use. */
export function registerLoginCommands(program: Command): void {
  program
    .command('login')
    .description(`Check a key against the API and save URL and key to the config file (${configPath()}, mode 0600).`)
    .option('--url <url>', 'API base URL (default http://127.0.0.1:8080, or the saved one with --web)')
    .option('--key-file <file>', 'read the API key from this file (keeps it out of shell history)')
    .option('--key <key>', 'the API key (prefer --key-file or stdin)')
    .option('--web', 'print a one-time link that signs a browser in to the console as this key\'s person (short-lived, single use); saves nothing')
    .option('--json', 'print JSON')
    .action((opts: LoginOptions) => run(async () => {
      if (opts.web) return webLink(opts);
      const url = opts.url ?? DEFAULT_URL;
      const key = (opts.key ?? (opts.keyFile ? readFileSync(opts.keyFile, 'utf8') : process.stdin.isTTY ? '' : readFileSync(0, 'utf8'))).trim();
      if (!key) throw new UsageError('give the key with --key-file FILE, on stdin, or with --key');
      const me = await new Transport({ url, apiKey: key, attempts: 1 }).request<Record<string, unknown>>('GET', '/v1/me');
      const file = saveClientConfig({ url, api_key: key });
      if (opts.json) record(true, { config: file, principal: me });
      else process.stdout.write(`logged in to ${url} as ${String(me['name'])} (${String(me['id'])}, tenant ${String(me['tenant_id'])}); saved to ${file}\n`);
    }));

  program
    .command('whoami')
    .description('Show the principal your key belongs to.')
    .option('--json', 'print JSON')
    .action((opts: { json?: boolean }) => run(async () => {
      const config = loadClientConfig();
      const me = await transport(config).request<Record<string, unknown>>('GET', '/v1/me');
      record(opts.json, opts.json ? me : { url: config.url, ...me });
    }));
}
