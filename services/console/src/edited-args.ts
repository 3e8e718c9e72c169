// Approve with edit: the approver types the arguments as JSON; the page checks they parse to an object before
// anything is sent (the server then judges whether they are no looser than what was asked).

/** The edited arguments as typed: an object, or why not (checked before anything is sent). */
export function parseEditedArgs(text: string): { ok: true; args: Record<string, unknown> } | { ok: false; message: string } {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (err) {
    return { ok: false, message: `not JSON: ${err instanceof Error ? err.message : String(err)}` };
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return { ok: false, message: 'the arguments must be a JSON object ({ "name": value, … })' };
  return { ok: true, args: v as Record<string, unknown> };
}
