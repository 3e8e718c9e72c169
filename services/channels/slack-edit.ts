import { createHmac, timingSafeEqual } from 'node:crypto';
import type { RoundFacts } from './facts.ts';
import { slackFact, visibleJson } from './untrusted-text.ts';

/**
 * "Approve with edit" on Slack: the button opens a modal (views.open) whose input holds the round's arguments
 * as JSON; its submission is the approval with `edited_args`, counted through the API's own path. The modal's
 * private_metadata binds the submission to the message (its ref), the Slack user it was opened for, the round
 * and the arguments the round is bound to, under an HMAC with the deployment's attestation secret: a
 * submission whose metadata was not sealed by us, or was sealed for someone or something else, is refused.
 */
export const EDIT_CALLBACK = 'countersign_edit_args';
/** Slack's limit for a plain-text input (and so for the arguments one modal can edit). */
export const SLACK_INPUT_MAX_CHARS = 3000;
/** Slack's limit for private_metadata. */
export const SLACK_METADATA_MAX_CHARS = 3000;

export type EditSeal = { ref: string; userId: string; round: number; argsDigest: string | null };

const macOf = (secret: Buffer, s: EditSeal) =>
  createHmac('sha256', secret).update(`countersign-slack-edit\u0000${s.ref}\u0000${s.userId}\u0000${s.round}\u0000${s.argsDigest ?? ''}`).digest('base64url');

/** The modal's private_metadata: the binding and its MAC, dot-separated (no part can contain a dot). */
export function sealEdit(secret: Buffer, s: EditSeal): string {
  return [s.ref, s.userId, String(s.round), s.argsDigest ?? '-', macOf(secret, s)].join('.');
}

/** The binding a submission's metadata carries, when its MAC is ours; null otherwise. */
export function unsealEdit(secret: Buffer, sealed: string): EditSeal | null {
  if (sealed.length > SLACK_METADATA_MAX_CHARS) return null;
  const parts = sealed.split('.');
  if (parts.length !== 5) return null;
  const [ref, userId, round, digest, mac] = parts as [string, string, string, string, string];
  if (!/^[A-Za-z0-9_-]{16,64}$/.test(ref) || !/^[A-Z0-9]{1,32}$/.test(userId) || !/^[1-9][0-9]{0,5}$/.test(round) || !/^(-|sha256:[0-9a-f]{64})$/.test(digest)) return null;
  const seal: EditSeal = { ref, userId, round: Number(round), argsDigest: digest === '-' ? null : digest };
  const expected = Buffer.from(macOf(secret, seal));
  const given = Buffer.from(mac);
  return expected.length === given.length && timingSafeEqual(expected, given) ? seal : null;
}

/** The arguments as the modal prefills them, or null when they do not fit Slack's input. */
export function editableArgs(f: RoundFacts): string | null {
  // A round already being approved with an edit: those are the arguments every further approval must approve.
  const text = visibleJson(f.edited_args ?? f.untrusted.args);
  return text.length <= SLACK_INPUT_MAX_CHARS ? text : null;
}

/** The modal: the round named, the arguments in a plain-text input (Slack shows input text as typed, never as markup). */
export function editModal(f: RoundFacts, sealed: string, prefill: string): Record<string, unknown> {
  return {
    type: 'modal',
    callback_id: EDIT_CALLBACK,
    private_metadata: sealed,
    title: { type: 'plain_text', text: 'Approve with edit' },
    submit: { type: 'plain_text', text: 'Approve' },
    close: { type: 'plain_text', text: 'Cancel' },
    blocks: [
      {
        type: 'section',
        text: {
          type: 'mrkdwn', verbatim: true,
          text: `Decision \`${slackFact(f.decision_id, 80)}\`, round ${f.round}: change the arguments, then approve. The edit counts only if the policy judges it no looser than what was asked (same rule or a stricter one, constraints no wider).`,
        },
      },
      {
        type: 'input', block_id: 'args', label: { type: 'plain_text', text: 'Arguments (JSON)' },
        element: { type: 'plain_text_input', action_id: 'args', multiline: true, max_length: SLACK_INPUT_MAX_CHARS, initial_value: prefill },
      },
    ],
  };
}
