#!/usr/bin/env node
// `npx countersign` entry: registers tsx so the TypeScript sources run as they are in a checkout.
import { register } from 'tsx/esm/api';

register();
const { main } = await import('./main.ts');
process.exitCode = await main(process.argv);
