// The CLI as a program (built to dist/cli.mjs; services/cli/countersign.mjs is its bin).
import { main } from './main.ts';

process.exitCode = await main(process.argv);
