// The recordings page: search the catalog, play a recording (plain <audio>,
// the caller's number beside it as the account's role may see it), show the
// automatic checks and the transcripts. Every search and playback is audited
// by the engine.
"use strict";

(() => {
  const table = document.querySelector("#recordings tbody");
  const form = document.getElementById("search");
  let objectUrl = null;

  const cell = Hotline.cell;

  function checksText(c) {
    if (!c) return "-";
    return "最长静音 " + c.longest_silence_s.toFixed(1) + "s · 抢话 " + c.talk_over_count +
      " 次/" + c.talk_over_s.toFixed(1) + "s · 坐席说话 " + Math.round(c.agent_talk_ratio * 100) +
      "% · 来电说话 " + Math.round(c.caller_talk_ratio * 100) + "%" + (c.over_target ? " · 超时长" : "");
  }

  async function play(rec) {
    const token = Hotline.session.token;
    const response = await fetch("/api/v1/recordings/" + rec.id + "/audio", {
      headers: { Authorization: "Bearer " + token },
    });
    if (!response.ok) throw new Error("HTTP " + response.status);
    const blob = await response.blob();
    if (objectUrl) URL.revokeObjectURL(objectUrl);
    objectUrl = URL.createObjectURL(blob);
    const audio = document.getElementById("audio");
    delete audio.dataset.duration;
    audio.onloadedmetadata = () => { audio.dataset.duration = String(audio.duration); };
    audio.src = objectUrl;
    document.getElementById("playing").textContent =
      rec.caller_number + " · " + new Date(rec.started_at).toLocaleString("zh-CN", { hour12: false });
    document.getElementById("player").classList.remove("hidden");
    const detail = await Hotline.api("GET", "/api/v1/recordings/" + rec.id);
    document.getElementById("checks").textContent = checksText(detail.checks);
    const box = document.getElementById("transcripts");
    box.textContent = "";
    for (const t of detail.transcripts) {
      const p = document.createElement("p");
      p.textContent = (t.direction === "caller" ? "来电: " : "坐席: ") + (t.text || "(无)");
      box.appendChild(p);
    }
    audio.play().catch(() => {});
  }

  async function search(event) {
    if (event) event.preventDefault();
    const params = new URLSearchParams();
    for (const input of form.querySelectorAll("input")) {
      if (!input.value) continue;
      params.set(input.name, input.type === "datetime-local" ? new Date(input.value).toISOString() : input.value);
    }
    const message = document.getElementById("search-msg");
    message.textContent = "";
    try {
      const data = await Hotline.api("GET", "/api/v1/recordings?" + params.toString());
      document.getElementById("count").textContent = "共 " + data.total + " 条";
      table.textContent = "";
      for (const rec of data.recordings) {
        const row = document.createElement("tr");
        cell(row, new Date(rec.started_at).toLocaleString("zh-CN"));
        cell(row, rec.caller_number);
        cell(row, rec.agents.join(","));
        cell(row, rec.duration_s == null ? "-" : rec.duration_s.toFixed(0) + "s");
        cell(row, checksText(rec.checks));
        cell(row, rec.state);
        const button = document.createElement("button");
        button.type = "button";
        button.textContent = "播放";
        button.disabled = rec.state !== "stored";
        button.addEventListener("click", () => play(rec).catch((e) => { message.textContent = e.message; }));
        cell(row, "").appendChild(button);
        table.appendChild(row);
      }
    } catch (error) {
      message.textContent = error.message;
      message.className = "msg error";
    }
  }

  function ready(session) {
    document.getElementById("who").textContent = session.username;
    document.getElementById("app").classList.remove("hidden");
    form.addEventListener("submit", search);
    search();
  }

  Hotline.bindLogin(ready);
})();
