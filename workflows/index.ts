// The worker's workflow bundle entry: every workflow type registered on the task queue.
export { decisionWorkflow } from './decision-workflow.ts';
export { policyActivationWorkflow } from './policy-activation-workflow.ts';
