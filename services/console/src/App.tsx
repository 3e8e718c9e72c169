import { useCallback, useEffect, useRef, useState, type FormEvent, type MouseEvent, type ReactNode } from 'react';
import { useQuery, useQueryClient } from '@tanstack/react-query';
import { client, setCsrfToken, unwrap, ApiError } from './api.ts';
import { navigate, usePath } from './router.ts';
import { SessionContext, hasRole, type Me } from './session.ts';
import { Inbox } from './Inbox.tsx';
import { Decisions, Timeline } from './Decisions.tsx';
import { PolicyEditor, Policies } from './Policies.tsx';
import { Agent, Agents } from './Agents.tsx';
import { Tools } from './Tools.tsx';
import { Members } from './Members.tsx';
import { Audit } from './Audit.tsx';
import { can } from './roles.ts';

export function Link({ to, children, className }: { to: string; children: ReactNode; className?: string }) {
  const go = (e: MouseEvent) => {
    if (e.metaKey || e.ctrlKey || e.shiftKey || e.button !== 0) return;
    e.preventDefault();
    navigate(to);
  };
  return <a href={to} onClick={go} className={className}>{children}</a>;
}

export function ErrorBox({ error }: { error: unknown }) {
  if (!error) return null;
  const text = error instanceof ApiError ? `${error.problem.title ?? 'Refused'}: ${error.message}` : error instanceof Error ? error.message : 'request failed';
  return <p role="alert" className="error">{text}</p>;
}

/** The one-time link's token, from the URL's fragment (never sent to a server), removed from the address bar at once. */
function takeLinkToken(): string | null {
  const m = /^#link=(csl_[A-Za-z0-9_-]{43})$/.exec(window.location.hash);
  if (!m) return null;
  window.history.replaceState(null, '', '/');
  return m[1]!;
}

function SignIn({ onSignedIn }: { onSignedIn: () => void }) {
  const [key, setKey] = useState('');
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  const link = useRef<string | null>(null);
  const [redeeming, setRedeeming] = useState(() => /^#link=/.test(window.location.hash));
  useEffect(() => {
    link.current ??= takeLinkToken();
    const token = link.current;
    if (!token) { setRedeeming(false); return; }
    link.current = '';
    void (async () => {
      try {
        const s = unwrap(await client.POST('/v1/console/links/redeem', { body: { token } }));
        setCsrfToken(s.csrf_token);
        onSignedIn();
      } catch (err) {
        setError(err);
      } finally {
        setRedeeming(false);
      }
    })();
  }, [onSignedIn]);
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      const s = unwrap(await client.POST('/v1/console/sessions', { body: { api_key: key } }));
      setCsrfToken(s.csrf_token);
      setKey('');
      onSignedIn();
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };
  return (
    <main className="signin">
      <h1>Countersign</h1>
      <form onSubmit={(e) => void submit(e)}>
        <label htmlFor="api-key">API key</label>
        <input id="api-key" name="api-key" type="password" autoComplete="off" value={key} onChange={(e) => setKey(e.target.value)} required />
        <p className="hint">The key is sent once to open a session; the browser keeps only an HttpOnly session cookie.</p>
        <button type="submit" disabled={busy || redeeming}>Sign in</button>
        {redeeming && <p role="status">Signing in with your one-time link…</p>}
        <p className="hint">Or run <code>countersign login --web</code> and open the link it prints (once, within minutes).</p>
        <ErrorBox error={error} />
      </form>
    </main>
  );
}

function Nav({ me }: { me: Me }) {
  const qc = useQueryClient();
  const signOut = async () => {
    await client.DELETE('/v1/console/session');
    setCsrfToken(null);
    qc.clear();
    navigate('/');
    await qc.invalidateQueries({ queryKey: ['session'] });
  };
  return (
    <header className="top">
      <a className="skip" href="#content">Skip to content</a>
      <nav aria-label="Main">
        {can(me, 'answer') && <Link to="/inbox">Approvals</Link>}
        <Link to="/decisions">Decisions</Link>
        <Link to="/policies">Policies</Link>
        {can(me, 'readAgents') && <Link to="/agents">Agents</Link>}
        <Link to="/tools">Tools</Link>
        {can(me, 'manageMembers') && <Link to="/members">Members</Link>}
        {can(me, 'audit') && <Link to="/audit">Audit</Link>}
      </nav>
      <span className="me">{me.name} · {me.tenant_id} · {me.roles.join(', ')}</span>
      <button type="button" onClick={() => void signOut()}>Sign out</button>
    </header>
  );
}

function Page({ path, me }: { path: string; me: Me }) {
  const decision = /^\/decisions\/(dec_[0-9a-f]{32})$/.exec(path);
  if (decision) return <Timeline id={decision[1]!} />;
  const policy = /^\/policies\/([A-Za-z0-9][A-Za-z0-9._-]{0,127})$/.exec(path);
  if (policy) return <PolicyEditor id={policy[1] === 'new' ? null : policy[1]!} />;
  const agent = /^\/agents\/([^/]{1,200})$/.exec(path);
  if (agent) return <Agent id={decodeURIComponent(agent[1]!)} />;
  if (path === '/decisions') return <Decisions />;
  if (path === '/policies') return <Policies />;
  if (path === '/agents') return <Agents />;
  if (path === '/tools') return <Tools />;
  if (path === '/members') return can(me, 'manageMembers') ? <Members /> : <p>Members and keys are for admins.</p>;
  if (path === '/audit') return can(me, 'audit') ? <Audit /> : <p>The audit page is for admins and auditors.</p>;
  if (path === '/inbox' || (path === '/' && hasRole(me, 'approver'))) return hasRole(me, 'approver') || hasRole(me, 'admin') ? <Inbox /> : <p>Your role answers no approvals.</p>;
  return <Decisions />;
}

export function App() {
  const path = usePath();
  const session = useQuery({
    queryKey: ['session'],
    queryFn: async () => {
      const res = await client.GET('/v1/console/session');
      if (res.response.status === 401) return null;
      const s = unwrap(res);
      setCsrfToken(s.csrf_token);
      return s;
    },
  });
  const { refetch } = session;
  const signedIn = useCallback(() => { void refetch(); }, [refetch]);
  if (session.isPending) return <p className="loading">Loading…</p>;
  if (session.error) return <ErrorBox error={session.error} />;
  if (!session.data) return <SignIn onSignedIn={signedIn} />;
  const me = session.data.principal;
  return (
    <SessionContext.Provider value={me}>
      <Nav me={me} />
      <main id="content" tabIndex={-1}>
        <Page path={path} me={me} />
      </main>
    </SessionContext.Provider>
  );
}
