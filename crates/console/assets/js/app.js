// The console's shell: session and login, navigation, and the page for the
// current path. Pages live in their own modules.
import { render } from 'preact';
import { html } from 'htm/preact';
import { useEffect, useState } from 'preact/hooks';
import { get, post, setCsrf, errorText, UNAUTHORIZED_EVENT } from './api.js';
import { Link, navigate, useRoute } from './router.js';
import { OverviewPage } from './overview.js';
import { TopicsPage, TopicPage } from './topics.js';
import { GroupsPage, GroupPage } from './groups.js';
import { FlowPage } from './flow.js';
import { DeadLettersPage } from './deadletters.js';

const NAV = [
  { href: '/', label: 'Overview', id: 'overview', match: (p) => p === '/' },
  { href: '/topics', label: 'Topics', id: 'topics', match: (p) => p.startsWith('/topics') },
  { href: '/groups', label: 'Consumer groups', id: 'groups', match: (p) => p.startsWith('/groups') },
  { href: '/flow', label: 'Event flow', id: 'flow', match: (p) => p.startsWith('/flow') },
  { href: '/dead-letters', label: 'Dead letters', id: 'dead-letters', match: (p) => p.startsWith('/dead-letters') },
];

async function loadSession() {
  try {
    return await get('/api/session');
  } catch (e) {
    // A broker without the session route serves the console unauthenticated.
    if (e.status === 404) return { auth_required: false, user: null, csrf: null, mechanisms: [] };
    throw e;
  }
}

function Login({ session, onLoggedIn }) {
  const [username, setUsername] = useState('');
  const [password, setPassword] = useState('');
  const [error, setError] = useState(null);
  const [busy, setBusy] = useState(false);
  const submit = async (e) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      const res = await post('/api/login', { username, password });
      setCsrf(res.csrf);
      onLoggedIn({ ...session, user: res.user, csrf: res.csrf });
    } catch (err) {
      setError(err.status === 401 ? 'Wrong user name or password.' : errorText(err));
    } finally {
      setBusy(false);
    }
  };
  return html`<div class="login-wrap" data-testid="page-login">
    <form class="card login" onSubmit=${submit}>
      <h1>Herald Console</h1>
      <p class="muted">Log in with your Kafka credentials${session.mechanisms && session.mechanisms.length ? ` (${session.mechanisms.join(', ')})` : ''}.
        The console acts with your principal's ACLs.</p>
      <label>User name <input type="text" autocomplete="username" data-testid="login-username" value=${username}
        onInput=${(e) => setUsername(e.target.value)} required /></label>
      <label>Password <input type="password" autocomplete="current-password" data-testid="login-password" value=${password}
        onInput=${(e) => setPassword(e.target.value)} required /></label>
      <button type="submit" class="primary" data-testid="login-submit" disabled=${busy}>Log in</button>
      ${error && html`<div class="error" data-testid="login-error">${error}</div>`}
    </form>
  </div>`;
}

function Page({ route }) {
  const p = route.path;
  const parts = p.split('/').filter(Boolean).map(decodeURIComponent);
  if (p === '/' || p === '/overview') return html`<${OverviewPage} />`;
  if (parts[0] === 'topics' && parts.length === 1) return html`<${TopicsPage} />`;
  if (parts[0] === 'topics' && parts.length === 2)
    return html`<${TopicPage} key=${parts[1]} name=${parts[1]} tab=${route.query.get('tab') || 'messages'} />`;
  if (parts[0] === 'groups' && parts.length === 1) return html`<${GroupsPage} />`;
  if (parts[0] === 'groups' && parts.length === 2) return html`<${GroupPage} key=${parts[1]} id=${parts[1]} />`;
  if (parts[0] === 'flow') return html`<${FlowPage} />`;
  if (parts[0] === 'dead-letters') return html`<${DeadLettersPage} topic=${parts[1] || null} />`;
  return html`<div data-testid="page-not-found"><h1>Not found</h1><p>No console page at ${p}. <${Link} href="/">Overview<//></p></div>`;
}

function App() {
  const route = useRoute();
  const [session, setSession] = useState(null);
  const [error, setError] = useState(null);

  const refresh = () =>
    loadSession()
      .then((s) => {
        setCsrf(s.csrf);
        setSession(s);
        setError(null);
      })
      .catch((e) => setError(errorText(e)));

  useEffect(() => {
    refresh();
    const on = () => refresh();
    window.addEventListener(UNAUTHORIZED_EVENT, on);
    return () => window.removeEventListener(UNAUTHORIZED_EVENT, on);
  }, []);

  if (error && !session) return html`<div class="error page-error">Cannot reach the broker's API: ${error} <button onClick=${refresh}>Retry</button></div>`;
  if (!session) return html`<p class="loading">Loading…</p>`;
  if (session.auth_required && !session.user) return html`<${Login} session=${session} onLoggedIn=${setSession} />`;

  const logout = async () => {
    try {
      await post('/api/logout', {});
    } catch {
      // Logged out either way: the next call asks for a login.
    }
    setCsrf(null);
    navigate('/');
    refresh();
  };
  return html`<div class="shell">
    <header class="top">
      <${Link} href="/" class="brand">Herald</${Link}>
      <nav class="main" data-testid="nav">
        ${NAV.map((n) => html`<${Link} href=${n.href} data-testid=${'nav-' + n.id} class=${n.match(route.path) ? 'active' : ''}>${n.label}<//>`)}
      </nav>
      <span class="user" data-testid="session-user">${session.user || ''}
        ${session.auth_required && html` <button class="link" data-testid="logout" onClick=${logout}>Log out</button>`}</span>
    </header>
    <main><${Page} route=${route} /></main>
  </div>`;
}

render(html`<${App} />`, document.getElementById('app'));
