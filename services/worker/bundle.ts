// Prebuilds the workflow bundle so a worker starts without running webpack, and the worker process itself
// (services/worker/build-entry.ts) so it starts without tsx (`make up`, `make test`).
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { bundleWorkflowCode } from '@temporalio/worker';
import { loadConfig } from '../config.ts';
import { buildWorkerEntry } from './build-entry.ts';
import { BUNDLER_OPTIONS, WORKFLOW_INTERCEPTOR_MODULES, workflowsPath } from './workflows-path.ts';

const config = loadConfig({ DATABASE_URL: 'postgres://unused/unused', ...process.env });
const out = config.COUNTERSIGN_WORKFLOW_BUNDLE ?? path.join(config.COUNTERSIGN_DATA_DIR, 'workflow-bundle.js');
const source = workflowsPath(undefined);
if (!('workflowsPath' in source)) throw new Error('unreachable');
const { code } = await bundleWorkflowCode({ workflowsPath: source.workflowsPath, ...BUNDLER_OPTIONS, workflowInterceptorModules: WORKFLOW_INTERCEPTOR_MODULES, logger: { log: () => {}, trace: () => {}, debug: () => {}, info: () => {}, warn: (m) => process.stderr.write(`${m}\n`), error: (m) => process.stderr.write(`${m}\n`) } });
mkdirSync(path.dirname(out), { recursive: true });
writeFileSync(out, code);
process.stderr.write(`[bundle] ${out} (${Math.round(code.length / 1024)} KiB)\n`);
// The worker process too, beside the bundle: `make up` starts it with plain node.
const entry = path.join(path.dirname(out), 'worker.mjs');
const { inputs } = await buildWorkerEntry(entry);
process.stderr.write(`[bundle] ${entry} (${inputs.length} sources)\n`);
