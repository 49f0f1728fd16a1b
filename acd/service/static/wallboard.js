// The ACD wallboard: one EventSource, one JSON snapshot per message, redrawn in place.
// Waits and times in state keep counting between snapshots from the moment one arrived.
"use strict";

const STATES = ["ready", "ringing", "talking", "wrap_up", "paused"];
let board = null;
let receivedAt = 0;

function el(tag, text, attrs) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = text;
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
  return node;
}

function duration(seconds) {
  if (seconds === null || seconds === undefined) return "–";
  const s = Math.max(0, Math.round(seconds));
  const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), r = s % 60;
  const mm = String(m).padStart(h ? 2 : 1, "0"), ss = String(r).padStart(2, "0");
  return h ? `${h}:${mm}:${ss}` : `${mm}:${ss}`;
}

function percent(value, target) {
  if (value === null || value === undefined) return el("td", "–", {class: "none"});
  const cls = target === undefined ? "" : (value >= target ? "good" : "bad");
  return el("td", `${Math.round(value * 100)}%`, {class: cls});
}

function fill(tbody, rows) {
  tbody.replaceChildren(...rows);
}

function drawQueues(elapsed) {
  fill(document.querySelector("#queues tbody"), board.queues.map((q) => {
    const tr = el("tr", null, {"data-queue": q.queue});
    tr.append(el("td", q.queue));
    tr.append(el("td", q.waiting, {"data-field": "waiting"}));
    tr.append(el("td", duration(q.waiting ? q.oldest_wait_s + elapsed : 0),
                 {"data-field": "oldest_wait"}));
    tr.append(el("td", q.ewt_s === null ? "–" : duration(q.ewt_s), {"data-field": "ewt"}));
    const target = q.sl_target;
    tr.append(percent(q.sl_window, target));
    tr.append(percent(q.sl_today, target));
    tr.append(percent(q.answer_rate_today, q.answer_rate_target));
    tr.append(el("td", `${q.agents_ready} / ${q.agents_logged_in}`));
    return tr;
  }));
}

function drawStates(id, rows) {
  const tbody = document.querySelector(`#${id} tbody`);
  const head = el("tr");
  head.append(el("th", ""));
  for (const s of STATES) head.append(el("th", s.replace("_", "-")));
  const lines = rows.map((r) => {
    const tr = el("tr", null, {"data-name": r.name});
    tr.append(el("td", r.name));
    for (const s of STATES) {
      let n = 0;
      const reasons = [];
      for (const [key, count] of Object.entries(r.states)) {
        if (key === s) n += count;
        if (s === "paused" && key.startsWith("paused:")) {
          n += count;
          reasons.push(`${key.slice(7)} ${count}`);
        }
      }
      const td = el("td", n || "·", {class: "n", "data-state": s});
      if (reasons.length) {
        td.title = reasons.join(", ");
        td.append(el("small", reasons.join(", "), {class: "reasons"}));
      }
      tr.append(td);
    }
    return tr;
  });
  fill(tbody, [head, ...lines]);
}

function drawAgents(elapsed) {
  document.getElementById("agent-count").textContent = `(${board.agents.length})`;
  fill(document.querySelector("#agents tbody"), board.agents.map((a) => {
    const tr = el("tr", null, {"data-agent": a.agent_id});
    tr.append(el("td", a.agent_id));
    tr.append(el("td", a.site));
    tr.append(el("td", a.group));
    tr.append(el("td", a.languages.join(" ")));
    const label = a.state === "paused" && a.reason ? `paused: ${a.reason}` : a.state.replace("_", "-");
    const cell = el("td");
    cell.append(el("span", label, {class: "state", "data-state": a.state}));
    tr.append(cell);
    tr.append(el("td", duration(a.in_state_s + elapsed), {"data-field": "in_state"}));
    return tr;
  }));
}

function drawAlerts() {
  // One line per queue below target; the languages nobody can take share one line.
  const box = document.getElementById("alerts");
  const lines = board.alerts.filter((a) => a.kind !== "language")
    .map((a) => el("p", a.text, {"data-kind": a.kind}));
  const silent = board.alerts.filter((a) => a.kind === "language");
  if (silent.length) {
    const p = el("p", "No agent logged in for: ", {"data-kind": "language"});
    for (const a of silent) p.append(el("span", a.language, {class: "chip", title: a.text}));
    lines.push(p);
  }
  box.replaceChildren(...lines);
}

function drawSurvey() {
  const box = document.getElementById("survey");
  const s = board.survey_today;
  if (!s || !s.answers) { box.textContent = ""; return; }
  box.textContent = `survey today ${s.average.toFixed(2)} / 5 (${s.answers}, target ${s.target})`;
  box.dataset.state = s.average >= s.target ? "good" : "bad";
}

function draw() {
  if (!board) return;
  const elapsed = (Date.now() - receivedAt) / 1000;
  document.getElementById("center").textContent = board.center;
  drawSurvey();
  document.getElementById("clock").textContent = new Date().toLocaleTimeString();
  drawQueues(elapsed);
  drawAgents(elapsed);
}

function onSnapshot(snapshot) {
  board = snapshot;
  receivedAt = Date.now();
  drawStates("by-site", board.agents_by.site);
  drawStates("by-group", board.agents_by.group);
  drawStates("by-language", board.agents_by.language);
  drawAlerts();
  draw();
}

function connect() {
  const status = document.getElementById("status");
  const source = new EventSource("/wallboard/events");
  source.onopen = () => { status.dataset.state = "live"; status.textContent = "live"; };
  source.onerror = () => { status.dataset.state = "lost"; status.textContent = "reconnecting"; };
  source.onmessage = (event) => onSnapshot(JSON.parse(event.data));
}

connect();
setInterval(draw, 1000);
