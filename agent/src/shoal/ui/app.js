// shoal visualizer: one column per node, a card per task, live from the manager's event stream.
// Every text goes through textContent (never innerHTML): names and labels cannot inject markup.
"use strict";

const token = new URLSearchParams(location.search).get("token") || "";
const q = token ? "?token=" + encodeURIComponent(token) : "";

function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = String(text);
  return e;
}

function hue(id) {  // a stable colour per service
  let h = 0;
  for (const ch of id) h = (h * 31 + ch.charCodeAt(0)) >>> 0;
  return h % 360;
}

function age(stamp) {
  const t = Date.parse(stamp);
  if (isNaN(t)) return "";
  const s = Math.max(0, Math.round((Date.now() - t) / 1000));
  if (s < 60) return s + "s";
  if (s < 3600) return Math.floor(s / 60) + "m";
  return Math.floor(s / 3600) + "h";
}

function render(state) {
  const board = document.getElementById("board");
  const columns = [];
  for (const node of state.Nodes) {
    const col = el("section", "node");
    col.dataset.nodeId = node.ID;
    col.dataset.hostname = node.Hostname;
    col.dataset.state = node.State;
    col.dataset.availability = node.Availability;
    if (node.State !== "ready") col.classList.add("down");
    if (node.Availability !== "active") col.classList.add(node.Availability);
    const head = el("div", "head");
    const title = el("div");
    title.appendChild(el("span", "hostname", node.Hostname));
    if (node.Leader) { const star = el("span", "leader", "★"); star.title = "leader"; title.appendChild(star); }
    head.appendChild(title);
    const meta = el("div", "meta");
    meta.appendChild(el("span", "role", node.Role));
    meta.appendChild(document.createTextNode(" · "));
    meta.appendChild(el("span", "availability", node.Availability));
    meta.appendChild(document.createTextNode(" · "));
    meta.appendChild(el("span", "state", node.State === "ready" ? "Ready" : node.State === "down" ? "Down" : node.State));
    head.appendChild(meta);
    const labels = Object.keys(node.Labels || {}).sort().map(k => k + "=" + node.Labels[k]).join(", ");
    if (labels) head.appendChild(el("div", "labels", labels));
    col.appendChild(head);
    const list = el("div", "tasks");
    for (const task of state.Tasks.filter(t => t.NodeID === node.ID)) {
      const card = el("div", "task " + task.State);
      card.dataset.taskId = task.ID;
      card.dataset.service = task.Service;
      card.style.background = "hsl(" + hue(task.ServiceID) + ", 55%, 42%)";
      card.appendChild(el("div", "name", task.Service + "." + task.Slot));
      card.appendChild(el("div", "image", task.Image));
      card.appendChild(el("div", "state", task.State + " " + age(task.Since)));
      list.appendChild(card);
    }
    col.appendChild(list);
    columns.push(col);
  }
  board.replaceChildren(...columns);
  const legend = document.getElementById("networks");
  legend.replaceChildren(...state.Networks.map(n => {
    const li = el("li", "network", n.Name + (n.Subnet ? " " + n.Subnet : ""));
    li.title = n.Driver;
    return li;
  }));
  document.body.dataset.loaded = String(Date.now());
}

let pending = null;
async function refresh() {
  pending = null;
  try {
    const resp = await fetch("api/state" + q, { cache: "no-store" });
    if (!resp.ok) throw new Error(resp.status + " " + resp.statusText);
    render(await resp.json());
    document.getElementById("status").textContent = "live";
  } catch (err) {
    document.getElementById("status").textContent = "error: " + err.message;
  }
}
function soon() { if (!pending) pending = setTimeout(refresh, 150); }

const source = new EventSource("api/events" + q);
source.onmessage = soon;
source.onopen = () => { document.getElementById("status").textContent = "live"; soon(); };
source.onerror = () => { document.getElementById("status").textContent = "reconnecting…"; };
setInterval(refresh, 30000);  // ages move on without events
refresh();
