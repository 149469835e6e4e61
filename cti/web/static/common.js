// hotline web pages: session, API calls and the WebSocket, shared by both pages.
"use strict";

const Hotline = (() => {
  const KEY = "hotline.session";
  let session = JSON.parse(sessionStorage.getItem(KEY) || "null");

  async function api(method, path, body) {
    const headers = { "Content-Type": "application/json" };
    if (session) headers.Authorization = "Bearer " + session.token;
    const response = await fetch(path, {
      method, headers, body: body === undefined ? undefined : JSON.stringify(body),
    });
    let data = {};
    try { data = await response.json(); } catch (e) { data = {}; }
    if (response.status === 401 && path !== "/api/v1/sessions") {
      logoutLocal();
      location.reload();
    }
    if (!response.ok) {
      const error = new Error(data.error || ("HTTP " + response.status));
      error.status = response.status;
      error.field = data.field;
      throw error;
    }
    return data;
  }

  async function login(username, password) {
    const data = await api("POST", "/api/v1/sessions", { username, password });
    session = data;
    sessionStorage.setItem(KEY, JSON.stringify(data));
    return data;
  }

  function logoutLocal() {
    session = null;
    sessionStorage.removeItem(KEY);
  }

  async function logout() {
    try { await api("DELETE", "/api/v1/sessions/current"); } finally { logoutLocal(); }
  }

  // Opens the WebSocket, authenticates with the first frame, reconnects with backoff.
  function socket(onFrame, onState) {
    let delay = 500;
    function open() {
      if (!session) return;
      const scheme = location.protocol === "https:" ? "wss://" : "ws://";
      const ws = new WebSocket(scheme + location.host + "/api/v1/ws");
      ws.onopen = () => { ws.send(JSON.stringify({ type: "auth", token: session.token })); };
      ws.onmessage = (event) => {
        const frame = JSON.parse(event.data);
        if (frame.type === "hello") { delay = 500; onState(true); }
        onFrame(frame);
      };
      ws.onclose = (event) => {
        onState(false);
        if (event.code === 4401) { logoutLocal(); location.reload(); return; }
        setTimeout(open, delay);
        delay = Math.min(delay * 2, 10000);
      };
    }
    open();
  }

  function bindLogin(onReady) {
    const form = document.getElementById("login");
    const message = document.getElementById("login-msg");
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      message.textContent = "";
      try {
        await login(form.username.value, form.password.value);
        form.classList.add("hidden");
        onReady(session);
      } catch (error) {
        message.textContent = error.message;
        message.className = "msg error";
      }
    });
    if (session) { form.classList.add("hidden"); onReady(session); }
  }

  const STATE_NAMES = {
    LOGGED_OUT: "未签入", AVAILABLE: "空闲", RESERVED: "预占", RINGING: "振铃",
    ON_CALL: "通话中", WRAP_UP: "话后处理", PAUSED: "示忙",
  };

  function duration(seconds) {
    if (seconds === null || seconds === undefined) return "—";
    const s = Math.max(0, Math.round(seconds));
    const m = Math.floor(s / 60);
    return m ? m + "分" + String(s % 60).padStart(2, "0") + "秒" : s + "秒";
  }

  function percent(value) {
    return value === null || value === undefined ? "—" : (value * 100).toFixed(1) + "%";
  }

  function time(epoch) {
    const d = new Date(epoch * 1000);
    return d.toLocaleString("zh-CN", { hour12: false });
  }

  // Text only: every value from the server goes into the page as text, never as HTML.
  function cell(row, text, className) {
    const td = document.createElement("td");
    td.textContent = text;
    if (className) td.className = className;
    row.appendChild(td);
    return td;
  }

  return {
    api, login, logout, socket, bindLogin, STATE_NAMES, duration, percent, time, cell,
    get session() { return session; },
  };
})();
