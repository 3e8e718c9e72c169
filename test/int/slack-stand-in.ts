import { createServer, type Server } from 'node:http';

export type SlackCall = { method: string; body: Record<string, any> };

/**
 * A local stand-in for Slack's Web API (COUNTERSIGN_SLACK_API_URL points at it): records every call and answers
 * like Slack for the methods Countersign uses. A message to the user U0GONE fails as Slack's does.
 */
export function slackStandIn(calls: SlackCall[], team: string): Server {
  let ts = 1_700_000_000;
  return createServer((req, res) => {
    let raw = '';
    req.on('data', (d: Buffer) => (raw += d.toString()));
    req.on('end', () => {
      const method = (req.url ?? '').replace(/^\/api\//, '').split('?')[0]!;
      const body: Record<string, any> = (req.headers['content-type'] ?? '').includes('json') ? JSON.parse(raw || '{}') : Object.fromEntries(new URLSearchParams(raw));
      if (typeof body['blocks'] === 'string') body['blocks'] = JSON.parse(body['blocks']);
      calls.push({ method, body });
      res.setHeader('content-type', 'application/json');
      if (method === 'auth.test') return res.end(JSON.stringify({ ok: true, team_id: team, user_id: 'UBOT', team: 'Countersign test' }));
      if (method === 'chat.postMessage' && body['channel'] === 'U0GONE') return res.end(JSON.stringify({ ok: false, error: 'channel_not_found' }));
      if (method === 'chat.postMessage') return res.end(JSON.stringify({ ok: true, channel: `D${String(body['channel'])}`, ts: `${ts++}.000100` }));
      if (method === 'views.open') return res.end(JSON.stringify({ ok: true, view: { id: 'V1' } }));
      if (method === 'chat.update') return res.end(JSON.stringify({ ok: true, channel: body['channel'], ts: body['ts'] }));
      res.end(JSON.stringify({ ok: false, error: 'unknown_method' }));
    });
  });
}
