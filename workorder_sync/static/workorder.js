// The work-order form (工单): opened from the desktop's screen-pop with the
// call id, it makes a draft pre-filled by the engine (or, with ?order_no=,
// reopens one: the number stays in the address, so a reload keeps the draft).
// Fields are saved as they change; then the agent accepts (受理), and either
// answers on the spot and archives, or sends the order to dispatch. The city's
// status comes back by itself: the page re-reads the order while the city
// holds it. Every value from the server goes into the page as text.
"use strict";

(() => {
  const $ = (id) => document.getElementById(id);
  const body = document.body;
  const form = $("order");

  const STATES = {
    DRAFT: "草稿", ACCEPTED: "已受理", DIRECT_ANSWERED: "直接答复", ARCHIVED: "已归档",
    PENDING_DISPATCH: "待派单", DISPATCHED: "已派单", SIGNED: "已签收", RETURN_REQUESTED: "退单申请中",
    EXTENSION_REQUESTED: "延期申请中", REPLIED: "已答复", REVIEW: "审核中", CLOSED: "已办结",
    CALLBACK_PENDING: "待回访", EVALUATED: "已评价", REOPENED: "重办",
  };
  const ACTIONS = {
    ACCEPT: "受理", DIRECT_ANSWER: "直接答复", ARCHIVE: "归档", SEND_TO_DISPATCH: "提交派单",
    DISPATCH: "派单", SIGN: "签收", REQUEST_RETURN: "申请退单", APPROVE_RETURN: "同意退单",
    REJECT_RETURN: "驳回退单", REQUEST_EXTENSION: "申请延期", APPROVE_EXTENSION: "同意延期",
    REJECT_EXTENSION: "驳回延期", REPLY: "办结反馈", SUBMIT_REVIEW: "提交审核", REVIEW_REJECT: "审核退回",
    CLOSE: "办结", START_CALLBACK: "开始回访", CALLBACK_ATTEMPT: "回访未接通", EVALUATE: "回访评价",
    REOPEN: "重办", EDIT: "修改", SUPERVISE: "督办",
  };
  const CHANNELS = {
    PHONE_12345: "12345 热线", PHONE_96181: "96181 热线", WEB: "网站", WECHAT: "微信",
    APP: "App", SMS: "短信", EMAIL: "电子邮件",
  };
  // A small local category code list; the agent picks a leaf.
  const CATEGORIES = [
    { code: "01", name: "城市管理", children: [
      { code: "0101", name: "市容环境", children: [
        { code: "010101", name: "路灯" }, { code: "010102", name: "垃圾清运" },
        { code: "010103", name: "占道经营" }] },
      { code: "0102", name: "违法建设", children: [{ code: "010201", name: "违章搭建" }] }] },
    { code: "02", name: "交通", children: [
      { code: "0201", name: "公交", children: [
        { code: "020101", name: "线路站点" }, { code: "020102", name: "服务质量" }] },
      { code: "0202", name: "出租车", children: [{ code: "020201", name: "拒载绕路" }] },
      { code: "0203", name: "道路设施", children: [{ code: "020301", name: "路面破损" }] }] },
    { code: "03", name: "社会保障", children: [
      { code: "0301", name: "医保", children: [
        { code: "030101", name: "报销结算" }, { code: "030102", name: "参保缴费" }] },
      { code: "0302", name: "养老保险", children: [{ code: "030201", name: "待遇领取" }] }] },
    { code: "04", name: "住房城乡建设", children: [
      { code: "0401", name: "物业管理", children: [{ code: "040101", name: "物业服务" }] },
      { code: "0402", name: "供水供气", children: [
        { code: "040201", name: "停水" }, { code: "040202", name: "燃气" }] }] },
    { code: "05", name: "生态环境", children: [
      { code: "0501", name: "噪声污染", children: [
        { code: "050101", name: "施工噪声" }, { code: "050102", name: "社会生活噪声" }] }] },
    { code: "06", name: "市场监管", children: [
      { code: "0601", name: "消费维权", children: [
        { code: "060101", name: "商品质量" }, { code: "060102", name: "预付卡" }] }] },
  ];
  const DIVISIONS = [
    ["440303", "深圳市罗湖区"], ["440304", "深圳市福田区"], ["440305", "深圳市南山区"],
    ["440306", "深圳市宝安区"], ["440307", "深圳市龙岗区"], ["440103", "广州市荔湾区"],
    ["440104", "广州市越秀区"], ["440106", "广州市天河区"],
  ];
  const TEXTS = ["title", "content", "address", "appellant_name", "contact_phone", "division_code"];
  const CHOICES = ["urgency", "time_limit_class"];
  const OPTIONAL_CHOICES = ["appeal_type", "disposition"];
  const FLAGS = ["anonymous", "confidential"];
  // The order can be edited while the case is open (workorder_sync.core).
  const EDITABLE = new Set(["DRAFT", "ACCEPTED", "PENDING_DISPATCH", "DISPATCHED", "SIGNED",
                            "RETURN_REQUESTED", "EXTENSION_REQUESTED", "REOPENED"]);
  // States in which the city moves the order: the page re-reads it.
  const CITY_HOLDS = new Set(["PENDING_DISPATCH", "DISPATCHED", "SIGNED", "RETURN_REQUESTED",
                              "EXTENSION_REQUESTED", "REPLIED", "REVIEW", "CLOSED",
                              "CALLBACK_PENDING", "REOPENED"]);
  const ANSWERED_HERE = ["DIRECT_ANSWER", "TRANSFER_EMERGENCY"];
  const DISPATCHED_AWAY = ["DISPATCH", "ESCALATE"];
  const DONE = {
    ACCEPT: "已受理", DIRECT_ANSWER: "已直接答复", ARCHIVE: "已办结归档", SEND_TO_DISPATCH: "已提交派单",
  };
  const REFRESH_MS = 2000;

  const categories = new Map(); // leaf code -> its path of names
  let order = null;
  const dirty = new Set(); // fields typed since they were last saved
  let queue = Promise.resolve();
  let pending = 0;

  // One request at a time, in the order asked: an autosave never races an action.
  function serial(task) {
    pending += 1;
    body.dataset.busy = "1";
    const run = queue.then(task).finally(() => {
      pending -= 1;
      if (!pending) delete body.dataset.busy;
    });
    queue = run.catch(() => {});
    return run;
  }

  function option(select, value, text) {
    const el = document.createElement("option");
    el.value = value;
    el.textContent = text;
    select.appendChild(el);
    return el;
  }

  // A stored value the built-in lists do not know is shown as it is, not lost.
  function ensureOption(select, value, text) {
    if (!value || [...select.options].some((o) => o.value === value)) return;
    option(select, value, text);
  }

  function buildLists() {
    const select = $("f-category");
    for (const top of CATEGORIES) {
      const group = document.createElement("optgroup");
      group.label = top.name;
      for (const mid of top.children) {
        for (const leaf of mid.children) {
          const path = [top.name, mid.name, leaf.name];
          categories.set(leaf.code, path);
          option(group, leaf.code, path.join(" > "));
        }
      }
      select.appendChild(group);
    }
    for (const [code, name] of DIVISIONS) option($("f-division"), code, name + "（" + code + "）");
  }

  function field(name) {
    return form.elements.namedItem(name);
  }

  // The form as the API wants it (EDITABLE_FIELDS of workorder_sync.core).
  function formValues() {
    const values = {};
    for (const name of TEXTS.concat(CHOICES)) values[name] = field(name).value.trim();
    for (const name of OPTIONAL_CHOICES) values[name] = field(name).value || null;
    for (const name of FLAGS) values[name] = field(name).checked;
    const code = field("category_code").value;
    values.category_code = code;
    values.category_path = code ? (categories.get(code) || pathOf(code)) : [];
    return values;
  }

  function pathOf(code) {
    return order && order.category_code === code ? order.category_path : [];
  }

  function storedValues(stored) {
    const values = {};
    for (const name of TEXTS.concat(CHOICES)) values[name] = stored[name] || "";
    for (const name of OPTIONAL_CHOICES) values[name] = stored[name] || null;
    for (const name of FLAGS) values[name] = Boolean(stored[name]);
    values.category_code = stored.category_code || "";
    values.category_path = stored.category_path || [];
    return values;
  }

  function same(a, b) {
    return JSON.stringify(a) === JSON.stringify(b);
  }

  function changedFields() {
    const now = formValues();
    const stored = storedValues(order);
    const changes = {};
    for (const [name, value] of Object.entries(now)) {
      if (!same(value, stored[name])) changes[name] = value;
    }
    return changes;
  }

  function fill(stored) {
    ensureOption($("f-category"), stored.category_code,
                 (stored.category_path || []).join(" > ") || stored.category_code);
    ensureOption($("f-division"), stored.division_code, stored.division_code);
    for (const name of TEXTS.concat(CHOICES, OPTIONAL_CHOICES, ["category_code"])) {
      if (!dirty.has(name)) field(name).value = stored[name] || "";
    }
    for (const name of FLAGS) {
      if (!dirty.has(name)) field(name).checked = Boolean(stored[name]);
    }
  }

  function when(iso) {
    return iso ? new Date(iso).toLocaleString("zh-CN", { hour12: false }) : "—";
  }

  function render(next) {
    order = next;
    body.dataset.orderNo = order.order_no;
    body.dataset.status = order.status;
    body.dataset.version = String(order.version);
    document.title = "工单 " + order.order_no + " - 12345 热线";
    $("order-no").textContent = order.order_no;
    $("status").textContent = STATES[order.status] || order.status;
    $("status").dataset.status = order.status;
    $("caller-number").textContent = order.caller_number || "—";
    $("channel").textContent = CHANNELS[order.channel] || order.channel;
    $("call-id").textContent = order.call_id || "—";
    $("recording-id").textContent = order.recording_id || "—";
    $("ivr").textContent = order.ivr_choices.length ? order.ivr_choices.join(" → ") : "无";
    $("created-by").textContent = order.created_by || "—";
    $("deadline").textContent = when(order.deadline);
    $("city-order-no").textContent = order.city_order_no || "—";
    $("units").textContent = order.assignments.length
      ? order.assignments.map((a) => a.unit + (a.role === "MAIN" ? "（主办）" : "（协办）")).join("、")
      : "—";
    $("reply").textContent = order.reply ? order.reply.text : "—";
    fill(order);
    renderHistory();
    renderButtons();
    $("sheet").classList.remove("hidden");
    body.dataset.dirty = dirty.size ? "1" : "0";
  }

  function renderHistory() {
    const rows = $("history");
    rows.replaceChildren();
    for (const entry of order.history) {
      const row = document.createElement("tr");
      row.dataset.action = entry.action;
      Hotline.cell(row, when(entry.at));
      Hotline.cell(row, (ACTIONS[entry.action] || entry.action) + (entry.origin === "city" ? "（市平台）" : ""));
      Hotline.cell(row, (STATES[entry.from_status] || entry.from_status) + " → " +
                        (STATES[entry.to_status] || entry.to_status));
      Hotline.cell(row, entry.actor);
      Hotline.cell(row, entry.reason || "");
      rows.appendChild(row);
    }
  }

  function renderButtons() {
    const status = order.status;
    const disposition = field("disposition").value;
    const answering = ANSWERED_HERE.includes(disposition);
    $("fields").disabled = !EDITABLE.has(status);
    $("btn-save").disabled = !EDITABLE.has(status);
    $("btn-save").textContent = status === "DRAFT" ? "保存草稿" : "保存修改";
    $("btn-accept").disabled = status !== "DRAFT";
    $("btn-answer").disabled = !(status === "ACCEPTED" && answering);
    $("btn-dispatch").disabled = !(status === "ACCEPTED" && DISPATCHED_AWAY.includes(disposition));
    $("btn-archive").disabled = status !== "DIRECT_ANSWERED";
    $("btn-answer").classList.toggle("hidden", !answering);
    $("btn-archive").classList.toggle("hidden", !answering);
    $("btn-dispatch").classList.toggle("hidden", answering);
    $("answer-box").classList.toggle("hidden", !(answering && (status === "DRAFT" || status === "ACCEPTED")));
  }

  function say(text, ok) {
    const el = $("msg");
    el.textContent = text;
    el.className = "msg " + (ok ? "ok" : "error");
  }

  function clearErrors() {
    for (const slot of document.querySelectorAll("[data-error-for]")) slot.textContent = "";
    for (const el of form.querySelectorAll("[aria-invalid]")) el.removeAttribute("aria-invalid");
    delete body.dataset.error;
  }

  // The API names the field at fault: the message goes next to it.
  function showError(error) {
    const name = error.field === "category_path" ? "category_code" : error.field;
    const slot = [...document.querySelectorAll("[data-error-for]")]
      .find((el) => el.dataset.errorFor === name);
    if (slot) {
      slot.textContent = error.message;
      const input = field(name);
      if (input) input.setAttribute("aria-invalid", "true");
      say("请修改标出的内容", false);
    } else {
      say(error.message, false);
    }
    body.dataset.error = slot ? name : "general";
  }

  async function save() {
    const changes = changedFields();
    if (!Object.keys(changes).length) {
      dirty.clear();
      body.dataset.dirty = "0";
      return true;
    }
    clearErrors();
    $("save-state").textContent = "正在保存…";
    try {
      const saved = await Hotline.api("PATCH", "/api/v1/workorders/" + encodeURIComponent(order.order_no), changes);
      const now = formValues();
      const stored = storedValues(saved);
      for (const name of [...dirty]) if (same(now[name], stored[name])) dirty.delete(name);
      render(saved);
      $("save-state").textContent = "已保存 " + new Date().toLocaleTimeString("zh-CN", { hour12: false });
      return true;
    } catch (error) {
      $("save-state").textContent = "未保存";
      showError(error);
      return false;
    }
  }

  async function act(action, data) {
    if (!(await save())) return;
    clearErrors();
    try {
      const request = data ? { action, data } : { action };
      render(await Hotline.api("POST", "/api/v1/workorders/" + encodeURIComponent(order.order_no) + "/actions", request));
      say(DONE[action] || "已完成", true);
    } catch (error) {
      showError(error);
    }
  }

  async function reread() {
    if (!order || !CITY_HOLDS.has(order.status)) return;
    try {
      const fresh = await Hotline.api("GET", "/api/v1/workorders/" + encodeURIComponent(order.order_no));
      if (fresh.version !== order.version) render(fresh);
    } catch (error) {
      // The engine restarting or the network away: the next round tries again.
    }
  }

  function edited(event) {
    const name = event.target.name;
    if (!name || name === "answer") return;
    dirty.add(name);
    body.dataset.dirty = "1";
    if (name === "disposition") renderButtons();
  }

  function bind() {
    form.addEventListener("input", edited);
    form.addEventListener("change", (event) => {
      edited(event);
      if (event.target.name && event.target.name !== "answer") serial(save);
    });
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      serial(save);
    });
    $("btn-accept").addEventListener("click", () => serial(() => act("ACCEPT")));
    $("btn-answer").addEventListener("click", () =>
      serial(() => act("DIRECT_ANSWER", { answer: field("answer").value })));
    $("btn-archive").addEventListener("click", () => serial(() => act("ARCHIVE")));
    $("btn-dispatch").addEventListener("click", () => serial(() => act("SEND_TO_DISPATCH")));
    setInterval(() => { if (!pending) serial(reread); }, REFRESH_MS);
  }

  async function open() {
    const params = new URLSearchParams(location.search);
    const orderNo = params.get("order_no");
    const callId = params.get("call_id");
    if (orderNo) {
      return Hotline.api("GET", "/api/v1/workorders/" + encodeURIComponent(orderNo));
    }
    if (!callId) throw new Error("缺少通话编号：请从坐席工作台的来电弹屏打开工单");
    const draft = await Hotline.api("POST", "/api/v1/workorders", { call_id: callId });
    params.set("order_no", draft.order_no);
    history.replaceState(null, "", location.pathname + "?" + params.toString());
    return draft;
  }

  async function start(session) {
    $("who").textContent = session.display_name || session.username;
    $("app").classList.remove("hidden");
    buildLists();
    try {
      render(await open());
    } catch (error) {
      const el = $("load-msg");
      el.textContent = error.message;
      el.className = "msg error";
      body.dataset.error = "load";
      return;
    }
    bind();
  }

  Hotline.bindLogin(start);
})();
