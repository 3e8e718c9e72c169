/** Typed errors of the SDK: every failure an agent can act on has its own class. */

export type ProblemBody = { type?: string; title?: string; status?: number; code?: string; detail?: string; instance?: string; errors?: Array<{ path: string; message: string }>; [k: string]: unknown };

/** The API answered with a problem (4xx/5xx). `code` is from the server's error table. */
export class CountersignApiError extends Error {
  readonly status: number;
  readonly code: string;
  readonly problem: ProblemBody;
  readonly requestId: string | undefined;
  constructor(status: number, problem: ProblemBody, requestId?: string) {
    super(`${status} ${problem.code ?? 'error'}: ${problem.detail ?? problem.title ?? 'request failed'}`);
    this.name = 'CountersignApiError';
    this.status = status;
    this.code = problem.code ?? 'unknown';
    this.problem = problem;
    this.requestId = requestId ?? problem.instance;
  }
  /** The server does not have this route (an older server), as opposed to "this decision does not exist". */
  get routeMissing(): boolean {
    return this.status === 404 && /^no route /.test(this.problem.detail ?? '');
  }
}

/** The API could not be reached after every retry. */
export class CountersignNetworkError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'CountersignNetworkError';
  }
}

/** The decision was DENY (by policy, by an approver, or on expiry). The tool did not run. */
export class DecisionDenied extends Error {
  readonly decisionId: string;
  readonly reason: string;
  readonly matchedRule: string | null;
  /** Why, in one word (`policy_violation`, `approval_rejected`, `approval_expired`, ...); undefined from an older server. */
  readonly reasonCode: string | undefined;
  /** The policy whose rule decided; null when the tenant default did, undefined from an older server. */
  readonly policyId: string | null | undefined;
  constructor(decisionId: string, reason: string, matchedRule: string | null, reasonCode?: string, policyId?: string | null) {
    super(`denied (${decisionId}): ${reason}`);
    this.name = 'DecisionDenied';
    this.decisionId = decisionId;
    this.reason = reason;
    this.matchedRule = matchedRule;
    this.reasonCode = reasonCode;
    this.policyId = policyId;
  }
}

/** The decision was still waiting for an approver when the wait ended. The tool did not run. */
export class ApprovalTimeout extends Error {
  readonly decisionId: string;
  constructor(decisionId: string, waitedMs: number) {
    super(`decision ${decisionId} is still pending approval after ${Math.round(waitedMs / 1000)} s`);
    this.name = 'ApprovalTimeout';
    this.decisionId = decisionId;
  }
}

/** The tool ran longer than the decision's max_runtime_sec constraint and was abandoned. */
export class ConstraintExceeded extends Error {
  readonly decisionId: string;
  readonly constraint: string;
  constructor(decisionId: string, constraint: string, message: string) {
    super(message);
    this.name = 'ConstraintExceeded';
    this.decisionId = decisionId;
    this.constraint = constraint;
  }
}

/**
 * The approvers approved changed arguments (`editedArgs`), and the guard has no `applyEdit` to call the tool with
 * them. The tool did not run: it never runs with arguments nobody approved.
 */
export class ArgumentsEdited extends Error {
  readonly decisionId: string;
  readonly editedArgs: Record<string, unknown>;
  constructor(decisionId: string, editedArgs: Record<string, unknown>) {
    super(`decision ${decisionId} was approved with edited arguments; give guard an applyEdit to run the tool with them`);
    this.name = 'ArgumentsEdited';
    this.decisionId = decisionId;
    this.editedArgs = editedArgs;
  }
}
