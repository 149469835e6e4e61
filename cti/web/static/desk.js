// Agent desktop: state and actions, screen-pop over the WebSocket, call control.
"use strict";

(() => {
  const $ = (id) => document.getElementById(id);
  const OUTCOMES = {
    answered: "已接听", abandoned: "放弃", lost: "中断", overflowed: "溢出",
    fallback: "兜底排队", unknown: "未知",
  };
  const APPEALS = {
    CONSULT: "咨询", HELP: "求助", COMPLAINT: "投诉", REPORT: "举报", SUGGEST: "建议", PRAISE: "表扬",
  };
  const ORDER_STATES = {
    DRAFT: "草稿", ACCEPTED: "已受理", DIRECT_ANSWERED: "直接答复", PENDING_DISPATCH: "待派发",
    DISPATCHED: "已派发", SIGNED: "已签收", RETURN_REQUESTED: "申请退回", EXTENSION_REQUESTED: "申请延期",
    REPLIED: "已答复", REVIEW: "审核中", CLOSED: "已办结", CALLBACK_PENDING: "待回访",
    EVALUATED: "已评价", ARCHIVED: "已归档", REOPENED: "重新办理",
  };
  let agent = null;
  let current = null; // {state, call_id, since, control}
  let ringingBefore = new Set();
  let lastPop = null;

  function say(id, text, ok) {
    const el = $(id);
    el.textContent = text;
    el.className = "msg " + (ok ? "ok" : "error");
  }

  async function refresh() {
    if (!agent) return;
    try {
      const data = await Hotline.api("GET", "/api/v1/agents");
      current = data.agents.find((a) => a.agent === agent) || null;
    } catch (error) { return; }
    render();
  }

  function render() {
    const state = current ? current.state : "LOGGED_OUT";
    const badge = $("state");
    badge.textContent = Hotline.STATE_NAMES[state] + (current && current.pause_reason ? "（" + current.pause_reason + "）" : "");
    badge.className = "badge " + state;
    badge.dataset.state = state;
    $("since").textContent = current ? "本状态 " + Hotline.duration(Date.now() / 1000 - current.since) : "";
    const control = current && current.control;
    // A three-way party that was ringing and is neither ringing nor in the
    // call any more did not answer: say so (the caller stays with the agent).
    const ringingNow = new Set(control ? control.ringing : []);
    for (const party of ringingBefore) {
      if (!ringingNow.has(party) && !(control && control.parties.includes(party))) {
        say("call-msg", "第三方 " + party + " 未接听，通话继续", false);
      }
    }
    ringingBefore = ringingNow;
    let callState = "";
    if (control) {
      if (control.held) callState = "保持中";
      else if (control.consult) callState = "咨询中：" + control.consult;
      else if (control.ringing && control.ringing.length) callState = "正在呼叫：" + control.ringing.join("、");
      else if (control.parties.length) callState = "三方通话：" + control.parties.join("、");
    }
    $("call-state").textContent = callState;
    $("btn-login").disabled = state !== "LOGGED_OUT";
    $("btn-logout").disabled = state === "LOGGED_OUT";
    $("btn-pause").disabled = state === "LOGGED_OUT" || state === "PAUSED";
    $("btn-resume").disabled = state !== "PAUSED";
    $("btn-wrapup").disabled = state !== "WRAP_UP";
    const onCall = state === "ON_CALL";
    for (const id of ["btn-hold", "btn-unhold", "btn-transfer", "btn-consult", "btn-complete",
                      "btn-cancel", "btn-conference", "btn-leave"]) {
      $(id).disabled = !onCall;
    }
  }

  async function agentAction(action, body) {
    try {
      await Hotline.api("POST", "/api/v1/agents/" + agent + "/" + action, body);
      say("agent-msg", "已完成", true);
    } catch (error) {
      say("agent-msg", error.message, false);
    }
    refresh();
  }

  function target() {
    const kind = $("target-kind").value;
    const value = $("target-value").value.trim();
    return value ? { kind, value } : { kind };
  }

  const DONE = {
    hold: "已保持，来电方听等待音乐", resume: "已恢复通话", transfer: "已转接",
    consult: "正在咨询，来电方等待中", "consult-complete": "已完成转接",
    "consult-cancel": "已取消咨询，回到来电方", conference: "正在邀请第三方加入",
    leave: "已退出三方通话",
  };

  async function callCommand(command, withTarget) {
    if (!current || !current.call_id) { say("call-msg", "当前没有通话", false); return; }
    try {
      await Hotline.api("POST", "/api/v1/calls/" + encodeURIComponent(current.call_id) + "/" + command,
                        withTarget ? { target: target() } : undefined);
      say("call-msg", DONE[command], true);
    } catch (error) {
      say("call-msg", error.message + (error.field ? "（" + error.field + "）" : ""), false);
    }
    refresh();
  }

  function showPop(frame) {
    lastPop = frame;
    $("pop-empty").classList.add("hidden");
    $("pop-body").classList.remove("hidden");
    $("pop-number").textContent = frame.caller_number || "未知号码";
    $("pop-name").textContent = frame.caller_name || "";
    $("pop-repeat").classList.toggle("hidden", !frame.repeat_caller);
    $("pop-line").textContent = frame.line || frame.dialled || "—";
    $("pop-wait").textContent = Hotline.duration(frame.waited_s);
    $("pop-ivr").textContent = (frame.ivr && frame.ivr.length) ? frame.ivr.join(" → ") : "无";
    $("pop-last").textContent = frame.last_agent || "—";
    $("pop-from").textContent = frame.transferred_from ? "坐席 " + frame.transferred_from : "—";
    $("pop-call").textContent = frame.call_id;
    // A new tab with an opener gets a copy of this tab's session: no second login.
    $("pop-order").href = "/workorders/form?call_id=" + encodeURIComponent(frame.call_id);
    const body = $("pop-history");
    body.replaceChildren();
    for (const past of frame.history || []) {
      const row = document.createElement("tr");
      Hotline.cell(row, Hotline.time(past.at));
      Hotline.cell(row, past.line || "—");
      Hotline.cell(row, past.agent || "—");
      Hotline.cell(row, OUTCOMES[past.outcome] || past.outcome);
      body.appendChild(row);
    }
    const orders = $("pop-orders");
    orders.replaceChildren();
    for (const order of frame.work_orders || []) {
      const row = document.createElement("tr");
      Hotline.cell(row, order.city_order_no ? order.order_no + "（市 " + order.city_order_no + "）" : order.order_no);
      Hotline.cell(row, APPEALS[order.appeal_type] || order.appeal_type);
      Hotline.cell(row, order.title);
      Hotline.cell(row, ORDER_STATES[order.status] || order.status);
      Hotline.cell(row, Hotline.time(order.created_at));
      orders.appendChild(row);
    }
    document.title = "【来电】" + (frame.caller_number || "") + " - 坐席工作台";
    refresh();
  }

  function start(session) {
    agent = session.agent;
    $("app").classList.remove("hidden");
    $("signout").classList.remove("hidden");
    $("who").textContent = (session.display_name || session.username) + (agent ? "（工号 " + agent + "）" : "");
    if (!agent) { say("agent-msg", "此账号未绑定坐席，请使用班长监控台", false); return; }
    $("btn-login").onclick = () => agentAction("login");
    $("btn-logout").onclick = () => agentAction("logout");
    $("btn-pause").onclick = () => agentAction("pause", { reason: $("pause-reason").value });
    $("btn-resume").onclick = () => agentAction("resume");
    $("btn-wrapup").onclick = () => agentAction("wrapup-done");
    $("btn-hold").onclick = () => callCommand("hold");
    $("btn-unhold").onclick = () => callCommand("resume");
    $("btn-transfer").onclick = () => callCommand("transfer", true);
    $("btn-consult").onclick = () => callCommand("consult", true);
    $("btn-complete").onclick = () => callCommand("consult-complete");
    $("btn-cancel").onclick = () => callCommand("consult-cancel");
    $("btn-conference").onclick = () => callCommand("conference", true);
    $("btn-leave").onclick = () => callCommand("leave");
    Hotline.socket((frame) => {
      if (frame.type === "screen_pop") showPop(frame);
      if (frame.type === "agent_state") { current = frame.state; render(); }
    }, (up) => {
      $("link").textContent = up ? "已连接" : "未连接";
      $("link").className = "badge " + (up ? "AVAILABLE" : "PAUSED");
      $("link").dataset.up = up ? "1" : "0";
    });
    refresh();
    // Agent and call-control state are pushed; the poll is only a safety net
    // for a push lost while the WebSocket reconnects.
    setInterval(refresh, 5000);
    setInterval(render, 1000); // the time in state ticks
  }

  $("signout").onclick = async () => { await Hotline.logout(); location.reload(); };
  Hotline.bindLogin(start);
})();
