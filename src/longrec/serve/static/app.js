// longrec demo page: plain JS, no external assets.
"use strict";
const $ = (id) => document.getElementById(id);
const state = { anon: "web-" + Math.random().toString(36).slice(2, 10), clicks: [], seq: 0 };

function userId() { return $("user").value || state.anon; }
function headers(write) {
  const h = { "Content-Type": "application/json" };
  if (write && $("apikey").value) h["Authorization"] = "Bearer " + $("apikey").value;
  return h;
}
async function call(path, body, write) {
  const r = await fetch(path, { method: "POST", headers: headers(write), body: JSON.stringify(body) });
  const data = await r.json().catch(() => ({}));
  if (!r.ok) throw new Error(data.message || ("HTTP " + r.status));
  return data;
}

async function recommend() {
  $("error").textContent = "";
  const body = { k: parseInt($("k").value || "10", 10), explain: true };
  const text = $("text").value.trim();
  if (text) body.text = text;
  body.user_id = userId();
  try {
    const data = await call("/recommend", body, false);
    render(data.items);
  } catch (e) { $("error").textContent = e.message; }
}

function render(items) {
  const ol = $("recs");
  ol.innerHTML = "";
  for (const it of items) {
    const li = document.createElement("li");
    li.dataset.itemId = String(it.item_id);
    li.className = "rec";
    const t = document.createElement("span");
    t.className = "title";
    t.textContent = it.title || String(it.item_id);
    li.appendChild(t);
    if (it.source === "new") {
      const n = document.createElement("span"); n.className = "new"; n.textContent = "new"; li.appendChild(n);
    }
    const s = document.createElement("span"); s.className = "score"; s.textContent = it.score.toFixed(3); li.appendChild(s);
    if (it.because && it.because.length) {
      const w = document.createElement("span"); w.className = "why";
      w.textContent = "because you liked " + it.because.map((b) => b.title).join(", ");
      li.appendChild(w);
    }
    li.addEventListener("click", () => click(it));
    ol.appendChild(li);
  }
}

async function click(it) {
  $("error").textContent = "";
  const ev = { event_id: state.anon + "-" + Date.now() + "-" + (state.seq++), user_id: userId(),
               item_id: it.item_id, type: "click", timestamp: Date.now() / 1000 };
  try {
    await call("/events", { events: [ev] }, true);
    state.clicks.push(it);
    const li = document.createElement("li"); li.textContent = it.title || String(it.item_id); $("clicks").appendChild(li);
    await recommend();
  } catch (e) { $("error").textContent = e.message; }
}

async function addItem() {
  const id = $("new-id").value.trim(), text = $("new-text").value.trim();
  if (!id || !text) { $("add-result").textContent = "give an id and a text"; return; }
  try {
    const r = await call("/items", { items: [{ item_id: id, text: text, title: text.slice(0, 80) }] }, true);
    $("add-result").textContent = (r.added ? "added" : "updated") + " in " + (r.seconds * 1000).toFixed(0) + " ms";
    await recommend();
  } catch (e) { $("add-result").textContent = e.message; }
}

async function init() {
  try {
    const ready = await (await fetch("/ready")).json();
    $("status").textContent = `${ready.model} · ${ready.n_items} items · ${ready.n_users} users`;
    const users = (await (await fetch("/users?limit=200")).json()).users;
    for (const u of users) { const o = document.createElement("option"); o.value = String(u); o.textContent = String(u); $("user").appendChild(o); }
  } catch (e) { $("status").textContent = "not ready: " + e.message; }
  $("ask").addEventListener("click", recommend);
  $("add").addEventListener("click", addItem);
  $("text").addEventListener("keydown", (e) => { if (e.key === "Enter") recommend(); });
  $("user").addEventListener("change", recommend);
}
init();
