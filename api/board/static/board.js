// The board's only script: live updates from /board/events and the "for 3m 10s" clocks.
// Without it every page still works (forms post, pages show the state when drawn).
"use strict";

const LABELS = {running: "Running", idle: "Idle", starved: "Starved", blocked: "Blocked",
  setup: "Setup", planned_stop: "Planned stop", fault: "Fault", offline: "Offline"};

function duration(seconds) {
  const s = Math.max(0, Math.floor(seconds));
  const pad = (n) => String(n).padStart(2, "0");
  if (s >= 2 * 86400) return `${Math.floor(s / 86400)}d ${Math.floor(s % 86400 / 3600)}h`;
  return s >= 3600 ? `${Math.floor(s / 3600)}h ${pad(Math.floor(s % 3600 / 60))}m`
                   : `${Math.floor(s / 60)}m ${pad(s % 60)}s`;
}

function tick() {
  for (const t of document.querySelectorAll("time[data-field=since]")) {
    const at = Date.parse(t.getAttribute("datetime"));
    if (!Number.isNaN(at)) t.textContent = duration((Date.now() - at) / 1000);
  }
}

function onState(e) {
  const d = JSON.parse(e.data);
  const tile = document.querySelector(`.tile[data-machine="${d.machine_id}"]`);
  if (!tile || tile.dataset.state === d.state) return;
  tile.classList.remove(`state-${tile.dataset.state}`);
  tile.classList.add(`state-${d.state}`);
  tile.dataset.state = d.state;
  tile.querySelector("[data-field=state]").textContent = LABELS[d.state] || d.state;
  tile.querySelector("time[data-field=since]").setAttribute("datetime", d.ts);
  tick();
}

// A stop's start as the page draws it: hour and minute in the plant's zone (the tile's).
function clock(iso, zone) {
  return new Intl.DateTimeFormat("en-GB", {timeZone: zone, hour: "2-digit", minute: "2-digit",
    hourCycle: "h23"}).format(new Date(iso));
}

function onStop(e) {
  const d = JSON.parse(e.data);
  const tile = document.querySelector(`.tile[data-machine="${d.machine_id}"]`);
  if (!tile) return;
  tile.querySelector("[data-field=stop]").textContent = d.ended_at ? ""
    : `Stop since ${clock(d.started_at, tile.dataset.zone)}: ${d.reason_code || "no reason yet"}`;
}

// Pages whose content is a list of tasks or stops redraw when those change, unless the user
// is typing into a form (they would lose what they typed) or has just sent one (a reload would
// cancel the answer, often the very change that caused the event).
let submitting = false;
document.addEventListener("submit", () => { submitting = true; });

function reloadWhenIdle() {
  if (submitting) return;
  const busy = document.activeElement && ["INPUT", "TEXTAREA", "SELECT"]
    .includes(document.activeElement.tagName) && document.activeElement.value;
  if (!busy) location.reload();
}

function connect() {
  const page = document.body.dataset.page;
  if (!page || page === "login" || page === "error") return;
  const source = new EventSource("/board/events");
  const live = document.getElementById("live");
  const shown = (yes) => {
    document.body.dataset.live = yes ? "yes" : "no";
    if (live) live.textContent = yes ? "Live" : "Reconnecting…";
  };
  source.addEventListener("open", () => shown(true));
  source.addEventListener("error", () => shown(false));
  if (page === "plant") {
    source.addEventListener("state", onState);
    source.addEventListener("downtime", onStop);
  } else {
    source.addEventListener("task", reloadWhenIdle);
    source.addEventListener("downtime", reloadWhenIdle);
  }
  source.addEventListener("resync", () => location.reload());
}

tick();
setInterval(tick, 1000);
connect();
