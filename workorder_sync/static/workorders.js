// The supervisors' work-order list: filtered by status, agent and due state,
// overdue (超期) first, then near due (临期), each by deadline. Agents see
// their own orders only (the API decides). Refreshed every half minute.
"use strict";

(() => {
  const $ = (id) => document.getElementById(id);
  const form = $("filters");

  const STATES = {
    DRAFT: "草稿", ACCEPTED: "已受理", DIRECT_ANSWERED: "直接答复", ARCHIVED: "已归档",
    PENDING_DISPATCH: "待派单", DISPATCHED: "已派单", SIGNED: "已签收", RETURN_REQUESTED: "退单申请中",
    EXTENSION_REQUESTED: "延期申请中", REPLIED: "已答复", REVIEW: "审核中", CLOSED: "已办结",
    CALLBACK_PENDING: "待回访", EVALUATED: "已评价", REOPENED: "重办",
  };
  const APPEALS = {
    CONSULT: "咨询", HELP: "求助", COMPLAINT: "投诉", REPORT: "举报", SUGGEST: "建议", PRAISE: "表扬",
  };
  const DUE = { OVERDUE: "超期", NEAR: "临期", ON_TIME: "正常" };
  const DUE_RANK = { OVERDUE: 0, NEAR: 1, ON_TIME: 2 };
  // Open: a draft, or an order someone still has to act on (not closed or filed).
  const OPEN = Object.keys(STATES).filter((s) => !["ARCHIVED", "CLOSED", "EVALUATED"].includes(s));
  const REFRESH_MS = 30000;

  function when(iso) {
    return iso ? new Date(iso).toLocaleString("zh-CN", { hour12: false }) : "—";
  }

  function byUrgency(a, b) {
    const rank = (o) => (o.due in DUE_RANK ? DUE_RANK[o.due] : 3);
    if (rank(a) !== rank(b)) return rank(a) - rank(b);
    return (a.deadline || "9999").localeCompare(b.deadline || "9999");
  }

  function row(order) {
    const tr = document.createElement("tr");
    tr.dataset.orderNo = order.order_no;
    tr.dataset.due = order.due || "";
    tr.dataset.status = order.status;
    const due = document.createElement("span");
    due.className = "badge " + (order.due === "OVERDUE" ? "PAUSED" : order.due === "NEAR" ? "RINGING" : "");
    due.textContent = order.due ? DUE[order.due] : "—";
    Hotline.cell(tr, "").appendChild(due);
    const link = document.createElement("a");
    link.href = "/workorders/form?order_no=" + encodeURIComponent(order.order_no);
    link.target = "_blank";
    link.rel = "opener";
    link.textContent = order.order_no;
    Hotline.cell(tr, "").appendChild(link);
    Hotline.cell(tr, order.city_order_no || "—");
    Hotline.cell(tr, APPEALS[order.appeal_type] || order.appeal_type || "—");
    Hotline.cell(tr, order.title || "（未填写）");
    Hotline.cell(tr, STATES[order.status] || order.status);
    Hotline.cell(tr, order.created_by || "—");
    Hotline.cell(tr, order.caller_number || "—");
    Hotline.cell(tr, when(order.deadline));
    Hotline.cell(tr, when(order.created_at));
    return tr;
  }

  async function load(event) {
    if (event) event.preventDefault();
    const params = new URLSearchParams({ limit: "500" });
    const status = form.elements.namedItem("status").value;
    if (status === "open") params.set("status", OPEN.join(","));
    else if (status) params.set("status", status);
    const agent = form.elements.namedItem("agent").value.trim();
    if (agent) params.set("agent", agent);
    const wanted = form.elements.namedItem("due").value;
    const message = $("list-msg");
    message.textContent = "";
    try {
      const data = await Hotline.api("GET", "/api/v1/workorders?" + params.toString());
      const orders = data.orders.filter((o) => !wanted || o.due === wanted).sort(byUrgency);
      $("orders").replaceChildren(...orders.map(row));
      $("count").textContent = "共 " + orders.length + " 件";
      $("updated").textContent = "更新于 " + new Date().toLocaleTimeString("zh-CN", { hour12: false });
      document.body.dataset.loaded = String(Number(document.body.dataset.loaded || 0) + 1);
    } catch (error) {
      message.textContent = error.message;
      message.className = "msg error";
    }
  }

  function ready(session) {
    $("who").textContent = session.display_name || session.username;
    $("app").classList.remove("hidden");
    const select = form.elements.namedItem("status");
    for (const [value, text] of Object.entries(STATES)) {
      const option = document.createElement("option");
      option.value = value;
      option.textContent = text;
      select.appendChild(option);
    }
    $("agent-filter").classList.toggle("hidden", session.role === "agent");
    form.addEventListener("submit", load);
    form.addEventListener("change", () => load());
    load();
    setInterval(load, REFRESH_MS);
  }

  Hotline.bindLogin(ready);
})();
