// sggw's status page: reads and writes through the REST API (same token, same errors).
// Plain JavaScript, no library; every value is put in the page as text, never as markup.
"use strict";

const HEALTH_EVERY_MS = 250;   // a stalled switch shows within sggw's 2 s, plus this
const COUNTERS_EVERY_MS = 1000;
const PATHS_EVERY_MS = 5000;
const HISTORY_MS = 5 * 60 * 1000;  // what the charts show
const TOKEN_KEY = "sggw-token";    // sessionStorage: gone when the browser session ends
const CHARTS = [["packets", "copies/s"], ["bytes", "bytes/s"],
                ["rate_limited", "rate-limited/s"], ["truncated", "truncated/s"]];

// needToken: the API refused the token (or wants one): nothing is asked until one is given
const state = {health: null, history: new Map(), switches: [], needToken: false};

function $(id) { return document.getElementById(id); }

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (key === "class") node.className = value;
    else if (key.startsWith("data-")) node.setAttribute(key, value);
    else node[key] = value;
  }
  for (const child of children) {
    if (child !== null && child !== undefined) {
      node.append(child instanceof Node ? child : String(child));
    }
  }
  return node;
}

// --- the API ----------------------------------------------------------------------------------

class ApiFailure extends Error {
  constructor(what, status, body) {
    const field = body && body.field ? " (field: " + body.field + ")" : "";
    const reason = body && body.error ? body.error : "no answer";
    super(what + ": " + (status || "") + " " + reason + field);
    this.status = status;
  }
}

async function api(method, path, body) {
  const headers = {};
  const token = sessionStorage.getItem(TOKEN_KEY);
  if (token) headers.Authorization = "Bearer " + token;
  const init = {method, headers, cache: "no-store", credentials: "omit"};
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch (err) {
    throw new ApiFailure(method + " " + path, 0, {error: "sggw does not answer"});
  }
  const text = await response.text();
  let parsed = null;
  try { parsed = text ? JSON.parse(text) : null; } catch (err) { parsed = {error: text}; }
  if (response.status === 401) {
    sessionStorage.removeItem(TOKEN_KEY);
    state.needToken = true;
    showSignedIn();
  }
  if (!response.ok) throw new ApiFailure(method + " " + path, response.status, parsed);
  return parsed;
}

function showError(err) {
  const box = $("error");
  box.textContent = err ? err.message : "";
  box.hidden = !err;
}

function showSignedIn() {
  const held = Boolean(sessionStorage.getItem(TOKEN_KEY));
  document.body.classList.toggle("readonly", !held);
  $("signed-in").hidden = !held;
  $("token-form").hidden = held;
}

// --- health and switches ---------------------------------------------------------------------

function yesNo(value, good) {
  const ok = value === good;
  return el("span", {class: ok ? "yes" : "no"}, value === true ? "yes" : value === false ? "no"
    : String(value));
}

function switchBad(s) {
  return !s.connected || !s.answering || !["programmed", "standby"].includes(s.state)
    || !s.learned_tables_bounded || !(s.ovs_settings && s.ovs_settings.ok)
    || (s.intruders && s.intruders.length > 0)
    || (s.remote_destinations || []).some(r => r.state !== "ok");
}

function reasons(health) {
  const out = [];
  for (const [name, s] of Object.entries(health.switches)) {
    if (!s.connected) { out.push(name + ": not connected"); continue; }
    if (!["programmed", "standby"].includes(s.state)) {
      out.push(name + ": " + s.state + (s.error ? " (" + s.error + ")" : ""));
    }
    if (!s.answering) out.push(name + ": does not answer (a stalled ovs-vswitchd?)");
    if (!s.learned_tables_bounded) out.push(name + ": learned tables not bounded");
    const ovs = s.ovs_settings || {};
    if (!ovs.ok) {
      const what = ovs.pending || ovs.error || (ovs.problems || []).join("; ");
      out.push(name + ": OVS settings: " + what + (ovs.fix ? " — fix: " + ovs.fix : ""));
    }
    for (const peer of s.intruders || []) {
      out.push(name + ": another connection claims its datapath id: " + peer.address
        + (peer.bridge ? " (bridge " + peer.bridge + ")" : ""));
    }
    for (const r of s.remote_destinations || []) {
      if (r.state !== "ok") out.push(name + ": " + r.session + " → " + r.destination + ": " + r.state);
    }
  }
  for (const kept of health.kept_not_applied || []) {
    out.push(kept.switch + ": " + kept.kind + " " + kept.name + " kept, not applied: " + kept.reason);
  }
  if (health.cluster && !health.cluster.master) out.push("cluster: no master");
  return out;
}

function renderHealth(health) {
  const badge = $("status");
  badge.textContent = health.status;
  badge.className = "badge " + health.status;
  $("updated").textContent = "updated " + new Date().toLocaleTimeString();
  const list = reasons(health);
  $("reasons").replaceChildren(...(list.length ? list : ["all well"]).map(r => el("li", {}, r)));
  $("switches").replaceChildren(...Object.entries(health.switches).map(([name, s]) => {
    const ovs = s.ovs_settings || {};
    const rows = [["connected", yesNo(s.connected, true)]];
    if (s.connected) {
      rows.push(["role", s.role || "single controller"],
                ["state", yesNo(s.state, "programmed")],
                ["answering", yesNo(s.answering, true)],
                ["learned tables bounded", yesNo(s.learned_tables_bounded, true)],
                ["OVS settings", ovs.ok ? yesNo(true, true)
                  : el("span", {class: "no"}, ovs.pending || ovs.error
                       || (ovs.problems || []).join("; "))]);
      if (ovs.fix) rows.push(["fix", el("code", {}, ovs.fix)]);
      if (s.intruders && s.intruders.length) {
        rows.push(["intruders", el("span", {class: "no"},
          s.intruders.map(p => p.address + (p.bridge ? " (" + p.bridge + ")" : "")).join(", "))]);
      }
    }
    const dl = el("dl", {});
    for (const [key, value] of rows) dl.append(el("dt", {}, key), el("dd", {}, value));
    return el("div", {class: switchBad(s) ? "card bad" : "card", "data-switch": name},
              el("h3", {}, name), dl);
  }));
  const cluster = health.cluster;
  $("cluster-section").hidden = !cluster;
  if (cluster) {
    const rows = [["this instance", cluster.name], ["its role", cluster.role],
                  ["master", cluster.master || "none"], ["generation", cluster.generation],
                  ["store members", (cluster.store || []).join(", ")],
                  ["store connected", yesNo(cluster.store_connected, true)]];
    $("cluster").replaceChildren(...rows.flatMap(([k, v]) => [el("dt", {}, k),
                                                                 el("dd", {}, v)]));
  }
  const names = Object.keys(health.switches);
  if (names.join() !== state.switches.join()) {
    state.switches = names;
    for (const select of [$("create-switch"), $("paths-switch")]) {
      select.replaceChildren(...names.map(n => el("option", {value: n}, n)));
    }
  }
}

// --- mirror sessions ---------------------------------------------------------------------------

function record(key, counters) {
  const now = Date.now();
  const samples = state.history.get(key) || [];
  samples.push({t: now, packets: counters.packets, bytes: counters.bytes,
                rate_limited: counters.rate_limited, truncated: counters.truncated || 0});
  while (samples.length && samples[0].t < now - HISTORY_MS) samples.shift();
  state.history.set(key, samples);
  return samples;
}

function rates(samples, field) {
  const out = [];
  for (let i = 1; i < samples.length; i++) {
    const seconds = (samples[i].t - samples[i - 1].t) / 1000;
    out.push({t: samples[i].t,
              v: Math.max(0, samples[i][field] - samples[i - 1][field]) / seconds});
  }
  return out;
}

const SVG = "http://www.w3.org/2000/svg";
const SHORTEST_CHART_MS = 30 * 1000;  // a new session's chart spans at least this

function sparkline(series) {
  const width = 160, height = 36;
  const svg = document.createElementNS(SVG, "svg");
  svg.setAttribute("width", width);
  svg.setAttribute("height", height);
  svg.setAttribute("viewBox", "0 0 " + width + " " + height);
  if (!series.length) return svg;
  const now = series[series.length - 1].t;
  const span = Math.min(HISTORY_MS, Math.max(SHORTEST_CHART_MS, now - series[0].t));
  const top = Math.max(1, ...series.map(p => p.v));
  const line = document.createElementNS(SVG, "polyline");
  line.setAttribute("points", series.map(p =>
    (width - width * (now - p.t) / span).toFixed(1) + ","
    + (height - 2 - (height - 4) * p.v / top).toFixed(1)).join(" "));
  svg.append(line);
  return svg;
}

function remoteState(dp, session, destination) {
  const s = state.health && state.health.switches[dp];
  const found = s && (s.remote_destinations || []).find(
    r => r.session === session && r.destination === destination);
  return found ? found.state : null;
}

function renderSession(dp, session) {
  const key = dp + "/" + session.name;
  const counters = session.counters;
  const samples = counters ? record(key, counters) : (state.history.get(key) || []);
  const charts = CHARTS.map(([field, label]) => {
    const series = rates(samples, field);
    const now = series.length ? series[series.length - 1].v : 0;
    return el("div", {class: "chart", "data-chart": field},
              el("span", {}, label + " ", el("span", {class: "value", "data-rate": field},
                                                 Math.round(now))),
              sparkline(series));
  });
  const dests = (session.destinations || []).map(d => {
    const name = d.port || Object.entries(d).filter(([k]) => ["erspan", "gre", "vxlan"]
      .includes(k)).map(([k, v]) => k + ":" + v.remote_ip)[0] || "?";
    return el("li", {}, name);
  });
  const perDest = counters ? Object.entries(counters.destinations || {}).map(([name, c]) => {
    const remote = remoteState(dp, session.name, name);
    return el("li", {"data-destination": name}, name + ": " + c.packets + " copies, "
      + c.bytes + " bytes", remote ? el("span", {class: remote === "ok" ? "yes" : "no"},
                                        " — " + remote) : null);
  }) : [];
  const remove = session.source === "api"
    ? el("button", {class: "writes", type: "button", textContent: "Delete",
                    onclick: () => write("DELETE", "/v1/switches/" + encodeURIComponent(dp)
                      + "/mirrors/" + encodeURIComponent(session.name)).then(refreshSessions)})
    : el("span", {class: "muted"}, "(from the config file)");
  const totals = counters
    ? counters.packets + " copies, " + counters.bytes + " bytes, " + counters.rate_limited
      + " rate-limited" + (counters.truncated !== undefined ? ", " + counters.truncated
                           + " truncated" : "")
    : "counters unavailable (switch not answering)";
  return el("div", {class: "session", "data-session": key},
            el("h3", {}, dp + " / " + session.name, el("span", {class: "muted"}, totals), remove),
            el("div", {class: "charts"}, ...charts),
            el("ul", {}, ...(perDest.length ? perDest : dests)));
}

async function refreshSessions() {
  if (!state.health) return;
  const parts = [];
  for (const dp of state.switches) {
    const sessions = await api("GET", "/v1/switches/" + encodeURIComponent(dp) + "/mirrors");
    for (const session of sessions) parts.push(renderSession(dp, session));
  }
  $("sessions").replaceChildren(...(parts.length ? parts : [el("p", {class: "muted"},
                                                               "no mirror session")]));
}

// --- learned reverse paths ---------------------------------------------------------------------

function pathQuery() {
  const params = new URLSearchParams({limit: "50"});
  for (const [id, key] of [["paths-host", "host"], ["paths-port", "port"]]) {
    const value = $(id).value.trim();
    if (value) params.set(key, value);
  }
  return params;
}

async function refreshPaths() {
  const dp = $("paths-switch").value;
  const s = state.health && state.health.switches[dp];
  if (!s || !s.connected || !s.answering) {
    $("paths-total").textContent = dp ? dp + " does not answer: no paths to list" : "";
    return;
  }
  const params = pathQuery();
  const found = await api("GET", "/v1/switches/" + encodeURIComponent(dp) + "/paths?" + params);
  $("paths-total").textContent = found.total + " paths" + (found.total > found.paths.length
    ? ", the newest " + found.paths.length + " shown" : "");
  $("paths").tBodies[0].replaceChildren(...found.paths.map(p => {
    const r = p.reply;
    const ports = r.src_port !== undefined ? r.src_port + " → " + r.dst_port : "";
    return el("tr", {}, ...[r.src, r.dst, r.proto || "", ports, r.from,
                            (p.to.port || p.to.port_no), p.packets === null ? "" : p.packets,
                            p.duration === null ? "" : p.duration,
                            p.idle_age === null ? "" : p.idle_age].map(v => el("td", {}, v)));
  }));
}

// --- writes --------------------------------------------------------------------------------

async function write(method, path, body) {
  try {
    const answer = await api(method, path, body);
    showError(null);
    return answer;
  } catch (err) {
    showError(err);
    throw err;
  }
}

function createSession(event) {
  event.preventDefault();
  const dp = $("create-switch").value;
  const body = {name: $("create-name").value.trim(),
                sources: [{port: $("create-source").value.trim(),
                           direction: $("create-direction").value}],
                destinations: [{port: $("create-destination").value.trim()}]};
  write("POST", "/v1/switches/" + encodeURIComponent(dp) + "/mirrors", body)
    .then(() => { $("create-name").value = ""; return refreshSessions(); })
    .catch(() => {});
}

function flushPaths() {
  const dp = $("paths-switch").value;
  const params = pathQuery();
  params.delete("limit");
  write("DELETE", "/v1/switches/" + encodeURIComponent(dp) + "/paths?" + params)
    .then(answer => { $("paths-total").textContent = "flushed " + answer.flushed; })
    .catch(() => {});
}

// --- the loops -----------------------------------------------------------------------------

function every(ms, task) {
  let running = false;
  const run = async () => {
    if (running || state.needToken) return;
    running = true;
    try {
      await task();
    } catch (err) {
      showError(err);
    } finally {
      running = false;
    }
  };
  run();
  return setInterval(run, ms);
}

async function refreshHealth() {
  state.health = await api("GET", "/v1/health");
  renderHealth(state.health);
}

function start() {
  showSignedIn();
  $("token-form").addEventListener("submit", event => {
    event.preventDefault();
    const token = $("token").value.trim();
    $("token").value = "";
    if (!token) return;
    sessionStorage.setItem(TOKEN_KEY, token);
    state.needToken = false;
    showSignedIn();
    showError(null);
    refreshHealth().then(refreshSessions).then(refreshPaths).catch(showError);
  });
  $("sign-out").addEventListener("click", () => {
    sessionStorage.removeItem(TOKEN_KEY);
    showSignedIn();
  });
  $("create").addEventListener("submit", createSession);
  $("flush").addEventListener("click", flushPaths);
  $("paths-filter").addEventListener("submit", event => {
    event.preventDefault();
    refreshPaths().then(() => showError(null)).catch(showError);
  });
  every(HEALTH_EVERY_MS, refreshHealth);
  every(COUNTERS_EVERY_MS, refreshSessions);
  every(PATHS_EVERY_MS, refreshPaths);
}

document.addEventListener("DOMContentLoaded", start);
