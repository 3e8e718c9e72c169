import { readFileSync } from 'node:fs';
import type { Command } from 'commander';
import { Transport } from '../../sdk/transport.ts';
import { configPath, loadClientConfig, record, run, saveClientConfig, transport, UsageError } from './remote.ts';

type LoginOptions = { url: string; key?: string; keyFile?: string; json?: boolean };

/** `countersign login` / `whoami`: where the API is and which key to use. */
export function registerLoginCommands(program: Command): void {
  program
    .command('login')
    .description(`Check a key against the API and save URL and key to the config file (${configPath()}, mode 0600).`)
    .option('--url <url>', 'API base URL', 'http://127.0.0.1:8080')
    .option('--key-file <file>', 'read the API key from this file (keeps it out of shell history)')
    .option('--key <key>', 'the API key (prefer --key-file or stdin)')
    .option('--json', 'print JSON')
    .action((opts: LoginOptions) => run(async () => {
      const key = (opts.key ?? (opts.keyFile ? readFileSync(opts.keyFile, 'utf8') : process.stdin.isTTY ? '' : readFileSync(0, 'utf8'))).trim();
      if (!key) throw new UsageError('give the key with --key-file FILE, on stdin, or with --key');
      const me = await new Transport({ url: opts.url, apiKey: key, attempts: 1 }).request<Record<string, unknown>>('GET', '/v1/me');
      const file = saveClientConfig({ url: opts.url, api_key: key });
      if (opts.json) record(true, { config: file, principal: me });
      else process.stdout.write(`logged in to ${opts.url} as ${String(me['name'])} (${String(me['id'])}, tenant ${String(me['tenant_id'])}); saved to ${file}\n`);
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
