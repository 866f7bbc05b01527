// kiln's web UI: plain JS, hash routes, live updates by server-sent events.
'use strict';
const API = '/api/v1';
const $main = document.getElementById('main');
let view = null;          // {onEvent(ev)} of the page shown
let es = null;

function h(tag, attrs, ...kids) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v == null || v === false) continue;
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? '' : v);
  }
  for (const c of kids.flat()) if (c != null) el.append(c.nodeType ? c : String(c));
  return el;
}
function svg(tag, attrs, ...kids) {
  const el = document.createElementNS('http://www.w3.org/2000/svg', tag);
  for (const [k, v] of Object.entries(attrs || {})) el.setAttribute(k, v);
  for (const c of kids.flat()) if (c != null) el.append(c.nodeType ? c : String(c));
  return el;
}
const enc = encodeURIComponent;
const badge = (st) => h('span', { class: 'badge s-' + (st || 'none') }, st || 'none');
const fmt = (t) => t ? new Date(t).toLocaleString() : '—';
function token() { return sessionStorage.getItem('kiln-token') || ''; }
async function api(path, opts = {}) {
  const headers = Object.assign({}, opts.headers || {});
  if (token()) headers.Authorization = 'Bearer ' + token();
  if (opts.body) headers['Content-Type'] = 'application/json';
  const r = await fetch(API + path, Object.assign({}, opts, { headers }));
  const ct = r.headers.get('content-type') || '';
  const body = ct.includes('json') ? await r.json() : await r.text();
  if (!r.ok) throw new Error((body && body.error) || r.status + ' ' + r.statusText);
  return body;
}
function crumbs(...parts) {
  const nav = document.getElementById('crumbs');
  nav.replaceChildren(...parts.map(([t, href]) => href ? h('a', { href }, t) : h('span', {}, t)));
}
function show(...kids) { $main.replaceChildren(...kids.filter((k) => k != null)); }
function fail(e) { show(h('p', { class: 'err', role: 'alert' }, String(e.message || e))); }
// A row of action buttons for POST endpoints: each button is
// [label, id, () => [path, body]]; the answer or the error is shown inline
// in the row's message, and the buttons are disabled while a call is out.
function actions(id, buttons, ...extra) {
  const msg = h('span', { class: 'msg', role: 'status', id: id + '-msg' });
  const bs = buttons.map(([label, bid, call, confirmText]) => h('button', { type: 'button', id: bid, onclick: async () => {
    if (confirmText && !confirm(confirmText)) return;
    msg.textContent = ''; msg.className = 'msg';
    if (!token()) { msg.textContent = 'Save the API token (top right) first.'; msg.className = 'msg err'; msg.setAttribute('role', 'alert'); return; }
    bs.forEach((b) => { b.disabled = true; });
    try {
      const [path, body] = call();
      await api(path, { method: 'POST', body: JSON.stringify(body || {}) });
      msg.textContent = label + ': done'; msg.setAttribute('role', 'status');
    } catch (err) {
      msg.textContent = label + ': ' + err.message; msg.className = 'msg err'; msg.setAttribute('role', 'alert');
    } finally { bs.forEach((b) => { b.disabled = false; }); }
  } }, label));
  return h('div', { class: 'action-bar', id }, bs, extra, msg);
}

// --- live updates: one EventSource for the whole page
function connect() {
  const live = document.getElementById('live');
  es = new EventSource(API + '/events');
  es.onopen = () => { live.textContent = 'live'; live.className = 'live on'; };
  es.onerror = () => { live.textContent = 'reconnecting'; live.className = 'live'; };
  const on = (kind) => (m) => { const ev = JSON.parse(m.data); ev.kind = kind; if (view && view.onEvent) view.onEvent(ev); };
  es.addEventListener('task', on('task'));
  es.addEventListener('run', on('run'));
}
// Coalesces bursts of events into one refresh.
function debounced(fn, ms = 150) {
  let t = null;
  return () => { if (!t) t = setTimeout(() => { t = null; fn(); }, ms); };
}

// --- DAG list
async function dagList() {
  crumbs(['DAGs']);
  const render = async () => {
    const { dags } = await api('/dags');
    const rows = dags.map((d) => h('tr', {},
      h('td', {}, h('a', { href: '#/dag/' + enc(d.dag) }, d.dag), d.paused ? ' ' : null, d.paused ? h('span', { class: 'badge' }, 'paused') : null,
        d.error ? h('div', { class: 'err' }, d.error) : null),
      h('td', {}, d.last_runs.length ? badge(d.last_runs[0].state) : h('span', { class: 'mute' }, 'no runs')),
      h('td', { class: 'hide-narrow' }, d.schedule || h('span', { class: 'mute' }, 'manual')),
      h('td', { class: 'hide-narrow' }, fmt(d.next_run)),
      h('td', {}, h('span', { class: 'strip' }, d.last_runs.slice().reverse().map((r) =>
        h('a', { class: 's-' + r.state, href: '#/run/' + enc(d.dag) + '/' + enc(r.run_id), title: r.run_id + ': ' + r.state, 'aria-label': 'run ' + r.run_id + ' ' + r.state }))))));
    show(h('h1', {}, 'DAGs'), h('div', { class: 'scroll' }, h('table', { id: 'dags' },
      h('thead', {}, h('tr', {}, h('th', {}, 'DAG'), h('th', {}, 'Last run'), h('th', { class: 'hide-narrow' }, 'Schedule'),
        h('th', { class: 'hide-narrow' }, 'Next run'), h('th', {}, 'Recent runs'))),
      h('tbody', {}, rows))));
  };
  await render();
  view = { onEvent: debounced(() => render().catch(fail), 300) };
}

// --- DAG page: grid, graph, trigger, source
function layers(tasks) {
  const byId = new Map(tasks.map((t) => [t.id, t]));
  const depth = new Map();
  const d = (id, seen = new Set()) => {
    if (depth.has(id)) return depth.get(id);
    if (seen.has(id)) return 0;
    seen.add(id);
    const t = byId.get(id);
    const v = t && t.deps.length ? 1 + Math.max(...t.deps.map((x) => d(x, seen))) : 0;
    depth.set(id, v);
    return v;
  };
  tasks.forEach((t) => d(t.id));
  return depth;
}
function graphSvg(g, states, dag, runId) {
  const depth = layers(g.tasks);
  const cols = [];
  for (const t of g.tasks) (cols[depth.get(t.id)] = cols[depth.get(t.id)] || []).push(t);
  const W = 150, H = 34, GX = 50, GY = 14;
  const pos = new Map();
  cols.forEach((c, x) => c.forEach((t, y) => pos.set(t.id, [x * (W + GX) + 4, y * (H + GY) + 4])));
  const width = cols.length * (W + GX), height = Math.max(...cols.map((c) => c.length)) * (H + GY) + 8;
  const s = svg('svg', { width, height, viewBox: `0 0 ${width} ${height}`, role: 'img', 'aria-label': 'task graph' });
  for (const t of g.tasks) for (const dep of t.deps) {
    const a = pos.get(dep), b = pos.get(t.id);
    if (!a || !b) continue;
    const x1 = a[0] + W, y1 = a[1] + H / 2, x2 = b[0], y2 = b[1] + H / 2;
    s.append(svg('path', { class: 'edge', d: `M${x1},${y1} C${x1 + GX / 2},${y1} ${x2 - GX / 2},${y2} ${x2},${y2}` }));
  }
  for (const t of g.tasks) {
    const [x, y] = pos.get(t.id);
    const st = states[t.id] || 'none';
    const rect = svg('rect', { x, y, width: W, height: H, rx: 5, style: `fill:var(--${st})`, 'data-task': t.id });
    const label = svg('text', { x: x + 8, y: y + H / 2 + 4 }, t.id.length > 20 ? t.id.slice(0, 19) + '…' : t.id);
    const node = svg('g', { class: 'node' }, svg('title', {}, t.id + ': ' + st), rect, label);
    if (runId) {
      const a = svg('a', { href: '#/task/' + enc(dag) + '/' + enc(runId) + '/' + enc(t.id) }, node);
      s.append(a);
    } else s.append(node);
  }
  return s;
}
async function dagPage(dag, tab) {
  tab = tab || 'grid';
  crumbs(['DAGs', '#/'], [dag]);
  const [info, graph] = await Promise.all([api('/dags/' + enc(dag)), api('/dags/' + enc(dag) + '/graph').catch(() => null)]);
  const tabs = h('div', { class: 'tabs', role: 'tablist' }, ['grid', 'graph', 'trigger', 'source'].map((t) =>
    h('a', { href: '#/dag/' + enc(dag) + '/' + t, 'aria-current': t === tab ? 'page' : null }, t)));
  const body = h('div', { id: 'tab' });
  show(h('h1', {}, dag, ' ', info.paused ? h('span', { class: 'badge' }, 'paused') : null),
    h('p', { class: 'mute' }, 'version ', String(info.current_version || '—'), info.schedule ? ' · schedule ' + info.schedule + ' · next ' + fmt(info.next_run) : ' · manual'),
    info.error ? h('p', { class: 'err' }, info.error) : null, tabs, body);
  if (tab === 'grid') {
    const render = async () => {
      const g = await api('/dags/' + enc(dag) + '/grid?runs=25');
      if (!g.runs.length) { body.replaceChildren(h('p', { class: 'mute' }, 'No runs yet.')); return; }
      const head = h('tr', {}, h('th', {}), g.runs.map((r) => h('th', { class: 'run' },
        h('a', { href: '#/run/' + enc(dag) + '/' + enc(r.run_id), title: r.run_id + ': ' + r.state }, r.run_id.length > 14 ? '…' + r.run_id.slice(-12) : r.run_id))));
      const runRow = h('tr', {}, h('th', { class: 'task' }, 'run'), g.runs.map((r) =>
        h('td', {}, h('span', { class: 'cell s-' + r.state, title: r.run_id + ': ' + r.state }))));
      const rows = g.tasks.map((t, i) => h('tr', {}, h('th', { class: 'task' }, t), g.runs.map((r) => {
        const c = r.cells[i];
        const st = c === '-' ? null : g.states[c.charCodeAt(0) - 97];
        return h('td', {}, st ? h('a', { class: 'cell s-' + st, href: '#/task/' + enc(dag) + '/' + enc(r.run_id) + '/' + enc(t),
          title: t + ' · ' + r.run_id + ': ' + st, 'aria-label': t + ' in ' + r.run_id + ': ' + st, 'data-state': st }) : h('span', { class: 'cell' }));
      })));
      body.replaceChildren(h('div', { class: 'scroll' }, h('table', { class: 'grid', id: 'grid' }, h('thead', {}, head), h('tbody', {}, runRow, rows))));
    };
    await render();
    view = { onEvent: debounced(() => render().catch(fail), 250) };
  } else if (tab === 'graph') {
    if (!graph) { body.replaceChildren(h('p', { class: 'err' }, 'The DAG has no loaded version.')); return; }
    const render = async () => {
      const runs = (await api('/dags/' + enc(dag) + '/runs?limit=1')).runs;
      const states = {};
      let runId = null;
      if (runs.length) {
        runId = runs[0].run_id;
        for (const t of (await api('/dags/' + enc(dag) + '/runs/' + enc(runId))).tasks) states[t.task] = t.state;
      }
      body.replaceChildren(h('p', { class: 'mute' }, runId ? 'Latest run ' + runId : 'No runs yet'), h('div', { class: 'scroll' }, graphSvg(graph, states, dag, runId)));
    };
    await render();
    view = { onEvent: debounced(() => render().catch(fail), 250) };
  } else if (tab === 'trigger') {
    const params = graph ? graph.params : [];
    const fields = params.map((p) => {
      const id = 'p-' + p.key;
      const input = p.values && p.values.length
        ? h('select', { id, name: p.key }, p.values.map((v) => h('option', { value: v, selected: v === p.default }, v)))
        : h('input', { id, name: p.key, value: p.default || '', required: p.required, type: p.type === 'int' || p.type === 'float' ? 'text' : 'text', inputmode: p.type === 'int' ? 'numeric' : null });
      return [h('label', { for: id }, p.key, h('span', { class: 'mute' }, ' (' + p.type + ')')), input];
    });
    const msg = h('p', { role: 'status', id: 'trigger-msg' });
    const form = h('form', { class: 'trigger', id: 'trigger' }, fields.flat(),
      h('label', { for: 'run_id' }, 'run id', h('span', { class: 'mute' }, ' (optional)')), h('input', { id: 'run_id', name: '_run_id' }),
      h('div', { class: 'actions' }, h('button', { class: 'primary', type: 'submit' }, 'Trigger run')));
    form.addEventListener('submit', async (e) => {
      e.preventDefault();
      const params = {};
      for (const p of (graph ? graph.params : [])) params[p.key] = form.elements[p.key].value;
      const body = { params };
      if (form.elements._run_id.value) body.run_id = form.elements._run_id.value;
      try {
        const r = await api('/dags/' + enc(dag) + '/runs', { method: 'POST', body: JSON.stringify(body) });
        location.hash = '#/run/' + enc(dag) + '/' + enc(r.run_id);
      } catch (err) { msg.textContent = err.message; msg.className = 'err'; }
    });
    body.replaceChildren(...(params.length ? [] : [h('p', { class: 'mute' }, 'This DAG has no params.')]), form, msg);
    view = null;
  } else if (tab === 'source') {
    const vs = info.versions || [];
    const cur = info.current_version;
    const src = cur ? await api('/dags/' + enc(dag) + '/versions/' + cur + '/source') : '';
    body.replaceChildren(h('table', {}, h('thead', {}, h('tr', {}, h('th', {}, 'version'), h('th', {}, 'created'), h('th', { class: 'hide-narrow' }, 'git'), h('th', {}, 'runs'))),
      h('tbody', {}, vs.map((v) => h('tr', {}, h('td', {}, String(v.version), v.current ? ' (current)' : ''), h('td', {}, fmt(v.created)),
        h('td', { class: 'hide-narrow' }, v.git_commit ? v.git_commit.slice(0, 10) + (v.git_dirty ? ' (dirty)' : '') : '—'), h('td', {}, String(v.runs)))))),
      h('h2', {}, 'Source of version ' + (cur || '—')), h('pre', { class: 'src', id: 'source' }, src));
    view = null;
  }
}

// --- run page: tasks and a Gantt chart of the tries
async function runPage(dag, runId) {
  crumbs(['DAGs', '#/'], [dag, '#/dag/' + enc(dag)], [runId]);
  const bar = actions('run-actions', [['Cancel run', 'cancel-run', () => [`/dags/${enc(dag)}/runs/${enc(runId)}/cancel`],
    'Cancel run ' + runId + '? Running tasks are stopped and the rest skipped.']]);
  const render = async () => {
    const r = await api('/dags/' + enc(dag) + '/runs/' + enc(runId));
    const tries = [];
    for (const t of r.tasks) for (const tr of t.tries) if (tr.start) tries.push([t.task, tr]);
    const t0 = Math.min(...tries.map(([, tr]) => Date.parse(tr.start)));
    const t1 = Math.max(...tries.map(([, tr]) => tr.end ? Date.parse(tr.end) : Date.now()), t0 + 1);
    const pct = (t) => ((t - t0) / (t1 - t0) * 100).toFixed(2) + '%';
    const gantt = h('table', { class: 'gantt', id: 'gantt' }, h('tbody', {}, r.tasks.map((t) => h('tr', {},
      h('td', {}, h('a', { href: '#/task/' + enc(dag) + '/' + enc(runId) + '/' + enc(t.task) }, t.task)),
      h('td', {}, badge(t.state)),
      h('td', { style: 'width:60%' }, h('div', { class: 'track' }, t.tries.filter((tr) => tr.start).map((tr) => {
        const s = Date.parse(tr.start), e = tr.end ? Date.parse(tr.end) : Date.now();
        return h('span', { class: 's-' + tr.state, title: `try ${tr.try_number}: ${tr.state}, ${((e - s) / 1000).toFixed(1)} s`,
          style: `left:${pct(s)};width:max(3px, calc(${pct(e)} - ${pct(s)}))` });
      })))))));
    show(h('h1', {}, 'Run ', runId, ' ', h('span', { id: 'run-state' }, badge(r.state))),
      h('p', { class: 'mute' }, `${r.run_type} · version ${r.version} · started ${fmt(r.start)} · ended ${fmt(r.end)}`), bar,
      Object.keys(r.params || {}).length ? h('p', {}, 'params: ', h('code', {}, JSON.stringify(r.params))) : null,
      h('h2', {}, 'Tries'), tries.length ? gantt : h('p', { class: 'mute' }, 'Nothing has started yet.'), tries.length ? null : gantt);
  };
  await render();
  view = { onEvent: (ev) => { if (ev.dag === dag && ev.run_id === runId) refresh(); } };
  const refresh = debounced(() => render().catch(fail), 200);
}

// --- task page: tries, outputs and the log, following its end
let tail = null;
async function taskPage(dag, runId, task, tryNo) {
  crumbs(['DAGs', '#/'], [dag, '#/dag/' + enc(dag)], [runId, '#/run/' + enc(dag) + '/' + enc(runId)], [task]);
  const t = await api(`/dags/${enc(dag)}/runs/${enc(runId)}/tasks/${enc(task)}`);
  const n = Number(tryNo) || t.try_number;
  const cur = t.tries.find((x) => x.try_number === n);
  const log = h('pre', { class: 'log', id: 'log', tabindex: '0', 'aria-label': 'log', 'aria-live': 'off' });
  const state = h('span', { id: 'task-state' }, badge(t.state));
  const base = `/dags/${enc(dag)}/runs/${enc(runId)}`;
  const down = h('input', { type: 'checkbox', id: 'clear-downstream' });
  const bar = actions('task-actions', [
    ['Clear', 'clear-task', () => [base + '/clear', { tasks: [task], downstream: down.checked }]],
    ['Mark success', 'mark-success', () => [base + '/tasks/' + enc(task) + '/mark', { state: 'success' }]],
    ['Mark failed', 'mark-failed', () => [base + '/tasks/' + enc(task) + '/mark', { state: 'failed' }]],
  ], h('label', { class: 'check', for: 'clear-downstream' }, down, ' clear downstream too'));
  show(h('h1', {}, task, ' ', state),
    h('p', { class: 'mute' }, `run ${runId} · try ${n || '—'} of ${t.max_tries}` + (t.reason ? ' · ' + t.reason : '')), bar,
    t.tries.length > 1 ? h('div', { class: 'tabs' }, t.tries.map((x) => h('a', { href: `#/task/${enc(dag)}/${enc(runId)}/${enc(task)}/${x.try_number}`, 'aria-current': x.try_number === n ? 'page' : null }, 'try ' + x.try_number))) : null,
    h('h2', {}, 'Outputs'), cur && cur.outputs ? h('pre', { class: 'src', id: 'outputs' }, JSON.stringify(cur.outputs, null, 2)) : h('p', { class: 'mute', id: 'outputs' }, 'none'),
    h('h2', {}, 'Log'), log);
  if (!n) { log.textContent = '(no try yet)'; }
  else {
    // The log's tail as server-sent events: what is there, then what is appended.
    tail = new EventSource(`${API}/dags/${enc(dag)}/runs/${enc(runId)}/tasks/${enc(task)}/tries/${n}/log?follow=1`);
    tail.addEventListener('log', (m) => {
      const follow = log.scrollTop + log.clientHeight >= log.scrollHeight - 8;
      log.append(JSON.parse(m.data));
      if (follow) log.scrollTop = log.scrollHeight;
    });
  }
  view = { onEvent: (ev) => {
    if (ev.kind === 'task' && ev.dag === dag && ev.run_id === runId && ev.task === task) {
      state.replaceChildren(badge(ev.state));
      if (ev.try !== n && ev.state === 'running') route();
    }
  } };
}

async function route() {
  view = null;
  if (tail) { tail.close(); tail = null; }
  const parts = location.hash.replace(/^#\/?/, '').split('/').map(decodeURIComponent);
  try {
    if (parts[0] === 'dag' && parts[1]) await dagPage(parts[1], parts[2]);
    else if (parts[0] === 'run' && parts[2]) await runPage(parts[1], parts[2]);
    else if (parts[0] === 'task' && parts[3]) await taskPage(parts[1], parts[2], parts[3], parts[4]);
    else await dagList();
  } catch (e) { fail(e); }
}

document.getElementById('tokenform').addEventListener('submit', (e) => {
  e.preventDefault();
  const input = document.getElementById('token');
  if (input.value) sessionStorage.setItem('kiln-token', input.value);
  input.value = '';
  input.placeholder = token() ? 'saved for this tab' : 'for actions';
});
if (token()) document.getElementById('token').placeholder = 'saved for this tab';
window.addEventListener('hashchange', route);
connect();
route();
