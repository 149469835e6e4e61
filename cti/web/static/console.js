// Supervisor console: tiles, agents, the day's 15 s rate, monitoring and forced actions.
"use strict";

(() => {
  const $ = (id) => document.getElementById(id);
  const SVG = "http://www.w3.org/2000/svg";
  let snapshot = null;

  function say(text, ok) {
    const el = $("action-msg");
    el.textContent = text;
    el.className = "msg " + (ok ? "ok" : "error");
  }

  function alarmScopes(kpi) {
    const scopes = new Set();
    for (const alarm of kpi.alarms || []) scopes.add(alarm.scope);
    return scopes;
  }

  function rateClass(value, target) {
    if (value === null || value === undefined) return "rate none";
    return "rate " + (value >= target ? "good" : "alarm");
  }

  function kv(list, label, value, className, key) {
    const dt = document.createElement("dt");
    dt.textContent = label;
    const dd = document.createElement("dd");
    dd.textContent = value;
    if (className) dd.className = className;
    if (key) dd.dataset.key = key;
    list.append(dt, dd);
  }

  function tile(title, scopeKey, scope, live, kpi, alarmed) {
    const targets = kpi.targets;
    const card = document.createElement("div");
    card.className = "card tile" + (alarmed.has(scopeKey) ? " alarm" : "");
    card.dataset.scope = scopeKey;
    const h = document.createElement("h3");
    h.textContent = title;
    const list = document.createElement("dl");
    list.className = "kv";
    const win15 = scope ? scope.windows["15m"] : null;
    const today = scope ? scope.windows.today : null;
    kv(list, "排队等待", String(live.waiting ?? 0) + " 个", null, "waiting");
    kv(list, "最长等待", Hotline.duration(live.longest_wait_s), null, "longest");
    if (live.longest_wait_s !== null && live.longest_wait_s !== undefined) {
      since(list.querySelector("[data-key=longest]"), kpi.at - live.longest_wait_s);
    }
    kv(list, "15秒接通率（15分钟）", Hotline.percent(win15 && win15.rate_15s),
       rateClass(win15 && win15.rate_15s, targets.rate_target), "rate15m");
    kv(list, "15秒接通率（今日）", Hotline.percent(today && today.rate_15s),
       rateClass(today && today.rate_15s, targets.rate_target), "rate-today");
    kv(list, "目标", Hotline.percent(targets.rate_target));
    kv(list, "接通率 / 放弃率（今日）",
       Hotline.percent(today && today.answer_rate) + " / " + Hotline.percent(today && today.abandon_rate));
    kv(list, "平均应答（ASA）", Hotline.duration(today && today.asa_s));
    kv(list, "平均处理（AHT）", Hotline.duration(today && today.aht_s));
    const talk = today && today.avg_talk_s;
    kv(list, "平均通话 / 目标", Hotline.duration(talk) + " / " + Hotline.duration(targets.talk_target_s),
       talk !== null && talk !== undefined && talk > targets.talk_target_s ? "rate alarm" : null);
    kv(list, "今日来电 / 接听", (today ? today.offered : 0) + " / " + (today ? today.answered : 0),
       null, "offered-today");
    card.append(h, list);
    return card;
  }

  function renderTiles(snap) {
    const kpi = snap.kpi;
    const alarmed = alarmScopes(kpi);
    const queues = $("queue-tiles");
    queues.replaceChildren();
    for (const [name, q] of Object.entries(snap.acd.queues)) {
      queues.appendChild(tile("队列 " + name, "queue:" + name, (kpi.queue || {})[name], q, kpi, alarmed));
    }
    const lines = $("line-tiles");
    lines.replaceChildren();
    const lineNames = new Set(Object.values(snap.acd.queues).map((q) => q.line));
    for (const name of Object.keys(kpi.line || {})) lineNames.add(name);
    for (const name of [...lineNames].sort()) {
      const scope = (kpi.line || {})[name];
      const live = { waiting: 0, longest_wait_s: null };
      for (const q of Object.values(snap.acd.queues)) {
        if (q.line !== name) continue;
        live.waiting += q.waiting;
        if (q.longest_wait_s !== null && (live.longest_wait_s === null || q.longest_wait_s > live.longest_wait_s)) {
          live.longest_wait_s = q.longest_wait_s;
        }
      }
      lines.appendChild(tile("热线 " + name, "line:" + name, scope, live, kpi, alarmed));
    }
    const alarms = $("alarms");
    alarms.replaceChildren();
    for (const alarm of kpi.alarms || []) {
      const li = document.createElement("li");
      li.textContent = alarm.message;
      li.className = "msg error";
      alarms.appendChild(li);
    }
    if (!alarms.children.length) {
      const li = document.createElement("li");
      li.textContent = "无";
      alarms.appendChild(li);
    }
  }

  function renderChart(snap) {
    const svg = $("chart");
    svg.replaceChildren();
    const points = snap.rate_chart || [];
    const target = snap.kpi.targets.rate_target;
    const x = (hour) => 40 + (hour / 24) * 660;
    const y = (rate) => 180 - rate * 160;
    const line = (x1, y1, x2, y2, cls) => {
      const el = document.createElementNS(SVG, "line");
      el.setAttribute("x1", x1); el.setAttribute("y1", y1);
      el.setAttribute("x2", x2); el.setAttribute("y2", y2);
      el.setAttribute("class", cls);
      el.setAttribute("stroke", "#ccc");
      svg.appendChild(el);
    };
    const label = (tx, ty, text) => {
      const el = document.createElementNS(SVG, "text");
      el.setAttribute("x", tx); el.setAttribute("y", ty);
      el.textContent = text;
      svg.appendChild(el);
    };
    line(40, y(0), 700, y(0), "axis");
    line(40, y(target), 700, y(target), "target");
    label(2, y(target) + 4, Hotline.percent(target));
    label(2, y(1) + 4, "100%");
    label(2, y(0) + 4, "0%");
    for (let h = 0; h <= 24; h += 3) label(x(h) - 6, 196, String(h));
    const dayStart = points.length ? points[0].from : 0;
    const coords = [];
    for (const p of points) {
      if (p.rate_15s === null || p.rate_15s === undefined) continue;
      const hour = (p.from - dayStart) / 3600 + 0.5;
      coords.push(x(hour) + "," + y(p.rate_15s));
      const dot = document.createElementNS(SVG, "circle");
      dot.setAttribute("cx", x(hour)); dot.setAttribute("cy", y(p.rate_15s)); dot.setAttribute("r", 3);
      dot.setAttribute("fill", p.rate_15s >= target ? "#1e8e3e" : "#c5221f");
      dot.setAttribute("data-rate", p.rate_15s);
      svg.appendChild(dot);
    }
    const poly = document.createElementNS(SVG, "polyline");
    poly.setAttribute("points", coords.join(" "));
    poly.setAttribute("class", "rate");
    svg.appendChild(poly);
  }

  async function act(method, path, body, done) {
    try {
      await Hotline.api(method, path, body);
      say(done, true);
      const snap = await Hotline.api("GET", "/api/v1/console");
      render(snap);
    } catch (error) {
      say(error.message, false);
    }
  }

  function button(text, onClick, disabled) {
    const b = document.createElement("button");
    b.type = "button";
    b.textContent = text;
    b.disabled = !!disabled;
    b.onclick = onClick;
    return b;
  }

  function renderAgents(snap) {
    const body = $("agents");
    body.replaceChildren();
    for (const [id, a] of Object.entries(snap.acd.agents).sort()) {
      const row = document.createElement("tr");
      row.dataset.agent = id;
      Hotline.cell(row, id);
      Hotline.cell(row, a.name);
      const state = Hotline.cell(row, Hotline.STATE_NAMES[a.state] || a.state);
      state.className = "badge " + a.state;
      state.dataset.state = a.state;
      since(Hotline.cell(row, ""), a.since);
      // Not routable without being paused: the phone is unregistered, or it is
      // skipped for a few seconds after a ring the switch or the phone refused.
      const notes = [a.pause_reason || ""];
      if (a.offline) notes.push("话机离线");
      if (a.skip_until) notes.push("暂跳过 (话机忙/拒接)");
      Hotline.cell(row, notes.filter(Boolean).join(" · "));
      Hotline.cell(row, a.call_id || "");
      Hotline.cell(row, String(a.calls_handled));
      const actions = document.createElement("td");
      const onCall = a.state === "ON_CALL";
      for (const [mode, text] of [["listen", "监听"], ["whisper", "密语"], ["barge", "强插"]]) {
        actions.appendChild(button(text, () => act("POST", "/api/v1/agents/" + id + "/monitor",
          { mode }, text + "：正在呼叫您的话机"), !onCall));
      }
      actions.appendChild(button("强制示忙", () => act("POST", "/api/v1/agents/" + id + "/pause",
        { reason: "班长示忙" }, "已示忙"), a.state === "LOGGED_OUT" || a.state === "PAUSED"));
      actions.appendChild(button("强制签出", () => act("POST", "/api/v1/agents/" + id + "/logout",
        undefined, "已签出"), a.state === "LOGGED_OUT"));
      row.appendChild(actions);
      body.appendChild(row);
    }
  }

  const PHASES = {
    ARRIVED: "语音导航", QUEUED: "排队中", RINGING: "振铃", CONNECTED: "通话中", AFTER_CALL: "话后",
  };
  const revealed = new Map(); // call_id -> the unmasked number this supervisor asked for

  async function reveal(callId) {
    try {
      const data = await Hotline.api("GET", "/api/v1/calls/" + encodeURIComponent(callId) + "/caller");
      revealed.set(callId, data.caller_number + (data.caller_name ? " " + data.caller_name : ""));
      say("已显示号码（此次查看已记入审计日志）", true);
      renderCalls(snapshot);
    } catch (error) {
      say(error.message, false);
    }
  }

  function renderCalls(snap) {
    const body = $("calls");
    body.replaceChildren();
    for (const call of snap.calls || []) {
      const row = document.createElement("tr");
      row.dataset.call = call.call_id;
      Hotline.cell(row, call.call_id);
      Hotline.cell(row, call.line || "—");
      Hotline.cell(row, call.queue || "—");
      Hotline.cell(row, PHASES[call.phase] || call.phase).dataset.phase = call.phase;
      Hotline.cell(row, revealed.get(call.call_id) || call.caller_number, "number");
      const waited = Hotline.cell(row, Hotline.duration(call.waited_s));
      if (call.talk_s === null) since(waited, snap.at - call.waited_s);
      const talk = Hotline.cell(row, "—");
      if (call.talk_s !== null) since(talk, snap.at - call.talk_s);
      Hotline.cell(row, call.agent || "—");
      const actions = document.createElement("td");
      actions.appendChild(button("查看号码", () => reveal(call.call_id), revealed.has(call.call_id)));
      row.appendChild(actions);
      body.appendChild(row);
    }
    if (!body.children.length) {
      const row = document.createElement("tr");
      Hotline.cell(row, "无").colSpan = 9;
      body.appendChild(row);
    }
  }

  // Durations tick between pushes: an element with data-since shows the time
  // from that moment (engine clock) to now, re-read every second; nothing
  // else is redrawn, so a click never lands on a replaced button.
  let clockOffset = 0; // engine time minus this browser's time

  function since(element, start) {
    element.dataset.since = String(start);
    element.textContent = Hotline.duration(Date.now() / 1000 + clockOffset - start);
  }

  function tick() {
    const now = Date.now() / 1000 + clockOffset;
    for (const element of document.querySelectorAll("[data-since]")) {
      element.textContent = Hotline.duration(now - Number(element.dataset.since));
    }
  }

  function render(snap) {
    clockOffset = snap.at - Date.now() / 1000;
    snapshot = snap;
    renderTiles(snap);
    renderCalls(snap);
    renderChart(snap);
    renderAgents(snap);
    $("updated").textContent = "更新于 " + Hotline.time(snap.at);
    $("updated").dataset.at = snap.at;
  }

  async function start(session) {
    $("app").classList.remove("hidden");
    $("signout").classList.remove("hidden");
    $("who").textContent = session.display_name || session.username;
    try {
      render(await Hotline.api("GET", "/api/v1/console"));
    } catch (error) {
      say(error.status === 403 ? "此账号不是班长或管理员，无权查看监控台" : error.message, false);
      return;
    }
    setInterval(tick, 1000);
    Hotline.socket((frame) => {
      if (frame.type === "console") render(frame.snapshot);
    }, (up) => {
      $("link").textContent = up ? "已连接" : "未连接";
      $("link").className = "badge " + (up ? "AVAILABLE" : "PAUSED");
      $("link").dataset.up = up ? "1" : "0";
    });
  }

  $("signout").onclick = async () => { await Hotline.logout(); location.reload(); };
  Hotline.bindLogin(start);
})();
