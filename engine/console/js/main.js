// The shell: hash routing, the sidebar, sign-in state, and each page's lifetime (its polls
// and requests end when the operator navigates away).

import { h, replace } from './dom.js';
import { getSession, clearSession, UNAUTHORIZED_EVENT } from './api.js';
import { errorBox, closeDialogs } from './ui.js';
import { clearProductCache } from './model.js';
import * as login from './pages/login.js';
import * as overview from './pages/overview.js';
import * as products from './pages/products.js';
import * as devices from './pages/devices.js';
import * as device from './pages/device.js';
import * as batch from './pages/batch.js';

const ROUTES = [
  { pattern: /^\/overview$/, nav: 'overview', render: overview.render, title: 'Overview' },
  { pattern: /^\/products$/, nav: 'products', render: products.renderList, title: 'Products' },
  { pattern: /^\/products\/([^/]+)$/, nav: 'products', render: products.renderDetail, title: 'Product' },
  { pattern: /^\/devices$/, nav: 'devices', render: devices.render, title: 'Devices' },
  { pattern: /^\/devices\/([^/]+)(?:\/(overview|shadow|commands|messages))?$/, nav: 'devices', render: device.render, title: 'Device' },
  { pattern: /^\/batch$/, nav: 'batch', render: batch.renderList, title: 'Batch tasks' },
  { pattern: /^\/batch\/([^/]+)$/, nav: 'batch', render: batch.renderDetail, title: 'Batch task' },
];

const NAV = [
  ['overview', 'Overview', '#/overview'],
  ['products', 'Products', '#/products'],
  ['devices', 'Devices', '#/devices'],
  ['batch', 'Batch tasks', '#/batch'],
];

/** What a page gets: its parameters, its root element, and lifetime helpers. */
class PageContext {
  constructor(root, params, query) {
    this.root = root;
    this.params = params;
    this.query = query;
    this.alive = true;
    this.controller = new AbortController();
    this.cleanups = [];
  }

  /** Aborted when the page goes away: pass it to api calls. */
  get signal() {
    return this.controller.signal;
  }

  onCleanup(fn) {
    this.cleanups.push(fn);
  }

  /**
   * Runs `task(run)` now and then every `ms` after each run ends (never two at once); skipped
   * while the tab is hidden; stops with the page. Errors go to `onError` (or are ignored).
   * Runs are numbered (`run.number`, from 1). Returns `{now(), started}`: `now()` runs it at
   * once (e.g. after a change); called while a run is in flight, it marks that run stale —
   * its answer may predate the change, so the task must draw nothing once `run.stale` is
   * true (also true once the page is gone) — and starts another run as soon as it ends.
   * `started` is the number of the last run started.
   */
  poll(task, ms, onError) {
    let timer = null;
    let runs = 0;
    let inFlight = null;
    const now = async () => {
      if (!this.alive) return;
      if (inFlight) {
        inFlight.dropped = true;
        return;
      }
      clearTimeout(timer);
      const page = this;
      const run = {
        number: (runs += 1),
        dropped: false,
        get stale() {
          return this.dropped || !page.alive;
        },
      };
      inFlight = run;
      try {
        if (!document.hidden) await task(run);
      } catch (error) {
        if (!run.stale && error.code !== 'ABORTED' && onError) onError(error);
      } finally {
        inFlight = null;
        if (this.alive) timer = setTimeout(now, run.dropped ? 0 : ms);
      }
    };
    this.onCleanup(() => clearTimeout(timer));
    now();
    return {
      now,
      get started() {
        return runs;
      },
    };
  }

  /** Navigates to a `#/…` address (a new history entry). */
  go(hash) {
    window.location.hash = hash;
  }

  dispose() {
    this.alive = false;
    this.controller.abort();
    for (const fn of this.cleanups) {
      try {
        fn();
      } catch {
        // A failed cleanup must not stop the others.
      }
    }
  }
}

let current = null;
let signOutMessage = null;

/** `#/devices/x?product_id=y` → {path: '/devices/x', query: URLSearchParams}. */
function parseHash() {
  const raw = window.location.hash.replace(/^#/, '') || '/overview';
  const [path, search = ''] = raw.split('?');
  return { path: path || '/overview', query: new URLSearchParams(search) };
}

function skipToContent(event) {
  event.preventDefault();
  const content = document.getElementById('content');
  if (content) content.focus();
}

function shell(session, activeNav) {
  const signOut = h('button', { type: 'button', class: 'btn btn-quiet', testid: 'sign-out', on: { click: () => doSignOut() } }, 'Sign out');
  return h(
    'div',
    { class: 'shell' },
    // Not a plain #content link: the router would take `content` for a route.
    h('a', { class: 'skip-link', href: '#content', on: { click: skipToContent } }, 'Skip to content'),
    h(
      'aside',
      { class: 'sidebar' },
      h('div', { class: 'brand' }, h('span', { class: 'brand-mark', 'aria-hidden': 'true' }, '◎'), h('span', null, 'ringiot')),
      h(
        'nav',
        { 'aria-label': 'Sections' },
        h(
          'ul',
          { class: 'nav-list' },
          NAV.map(([key, label, href]) => h('li', null, h('a', { href, class: ['nav-link', key === activeNav && 'active'], 'aria-current': key === activeNav ? 'page' : null }, label))),
        ),
      ),
      h('div', { class: 'sidebar-foot' }, h('div', { class: 'project' }, h('span', { class: 'muted' }, 'Project'), h('code', { testid: 'project-id' }, session.projectId)), signOut),
    ),
    h('main', { id: 'content', class: 'content', tabindex: '-1' }),
  );
}

function doSignOut(message) {
  clearSession();
  devices.clearSelection();
  clearProductCache();
  signOutMessage = message || null;
  route();
}

function route() {
  // Dialogs live on document.body: none outlives its page (or the session).
  closeDialogs();
  if (current) current.dispose();
  current = null;
  const app = document.getElementById('app');
  const session = getSession();
  const { path, query } = parseHash();

  if (!session) {
    document.title = 'Sign in · ringiot console';
    const root = h('main', { id: 'content', class: 'login-main' });
    replace(app, root);
    current = new PageContext(root, [], query);
    login.render(current, { message: signOutMessage, onSignedIn: () => route() });
    signOutMessage = null;
    return;
  }

  if (!window.location.hash) window.history.replaceState(null, '', '#/overview');
  let matched = null;
  let params = [];
  for (const r of ROUTES) {
    const m = r.pattern.exec(path);
    if (m) {
      try {
        params = m.slice(1).map((p) => (p === undefined ? undefined : decodeURIComponent(p)));
        matched = r;
      } catch {
        // A malformed escape (`%E0%A4%A`): no such page.
        params = [];
      }
      break;
    }
  }
  const frame = shell(session, matched ? matched.nav : null);
  replace(app, frame);
  const root = frame.querySelector('#content');
  current = new PageContext(root, params, query);
  if (!matched) {
    document.title = 'Not found · ringiot console';
    replace(root, h('h1', null, 'Not found'), h('p', null, 'No page at ', h('code', null, path), '. ', h('a', { href: '#/overview' }, 'Go to the overview.')));
    return;
  }
  document.title = `${matched.title} · ringiot console`;
  try {
    const result = matched.render(current);
    if (result && typeof result.catch === 'function') {
      result.catch((error) => {
        if (current && current.root === root && error.code !== 'ABORTED') root.append(errorBox(error));
      });
    }
  } catch (error) {
    root.append(errorBox(error));
  }
}

window.addEventListener(UNAUTHORIZED_EVENT, (event) => {
  if (getSession()) doSignOut(`Signed out: the API refused the token (${event.detail.describe()}).`);
});
window.addEventListener('hashchange', route);
route();
