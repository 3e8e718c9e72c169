// `make up` / `make test`: run pending migrations as the schema owner and grant the app role.
import { loadConfig } from '../config.ts';
import { migrate } from './migrate.ts';

const config = loadConfig();
const applied = await migrate(config.adminDatabaseUrl, config.DATABASE_URL);
process.stderr.write(applied.length ? `[migrate] applied ${applied.join(', ')}\n` : '[migrate] schema is up to date\n');
