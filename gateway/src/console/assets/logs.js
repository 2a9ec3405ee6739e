// The Logs page: the webhook's attempts (status and time filters, newest first), each row
// expandable to its request headers (masked by the gateway), payload, response, error and the
// plugins' log lines; resend one delivery; recover every failure since a time. Every value is
// shown with textContent: a payload holding <script> stays text.
"use strict";
document.addEventListener("DOMContentLoaded", function () {
  var filters = document.getElementById("filters");
  var id = filters.getAttribute("data-id");
  var tbody = document.querySelector("#attempts tbody");
  var status = document.getElementById("logs-status");
  var more = document.getElementById("more");
  var $ = function (x) { return document.getElementById(x); };
  var page = 1;

  function iso(local) { if (!local) return ""; var d = new Date(local); return isNaN(d) ? "" : d.toISOString(); }
  function query() {
    var q = ["page_size=50", "page=" + page];
    if ($("status").value) q.push("status=" + encodeURIComponent($("status").value));
    var s = iso($("since").value); if (s) q.push("since=" + encodeURIComponent(s));
    var u = iso($("until").value); if (u) q.push("until=" + encodeURIComponent(u));
    return q.join("&");
  }
  function section(parent, title, text) {
    parent.appendChild(gw.el("h3", title));
    parent.appendChild(gw.el("pre", text === null || text === undefined || text === "" ? "(none)" : text));
  }
  function details(a) {
    var box = gw.el("div", null, "attempt-detail");
    var headers = Object.keys(a.request_headers || {}).map(function (k) { return k + ": " + a.request_headers[k]; }).join("\n");
    section(box, "Request headers", headers);
    section(box, "Payload sent", a.request_body);
    section(box, "Response", a.response_body);
    section(box, "Error", a.error);
    box.appendChild(gw.el("h3", "Plugin log"));
    var logs = a.plugin_logs || [];
    if (!logs.length) box.appendChild(gw.el("p", "(no plugin log lines)"));
    else {
      var ul = gw.el("ul", null, "plugin-logs");
      logs.forEach(function (l) { ul.appendChild(gw.el("li", "[" + (l.level || "") + "] " + (l.plugin || "") + " (" + (l.role || "") + "): " + (l.message || ""))); });
      box.appendChild(ul);
    }
    return box;
  }
  function row(a, i) {
    var tr = document.createElement("tr");
    tr.className = "attempt outcome-" + a.outcome;
    [gw.when(a.timestamp), "#" + a.attempt, a.outcome, a.status_code === null || a.status_code === undefined ? "—" : a.status_code,
      a.duration_ms + " ms", a.url].forEach(function (v) { tr.appendChild(gw.el("td", v)); });
    var actions = gw.el("td", null, "actions");
    var expand = gw.el("button", "Details", "small expand");
    expand.type = "button";
    expand.setAttribute("aria-expanded", "false");
    var detailRow = document.createElement("tr");
    detailRow.className = "detail";
    detailRow.hidden = true;
    var cell = document.createElement("td");
    cell.colSpan = 7;
    cell.id = "attempt-" + i;
    detailRow.appendChild(cell);
    expand.setAttribute("aria-controls", cell.id);
    expand.addEventListener("click", function () {
      var open = detailRow.hidden;
      if (open && !cell.firstChild) cell.appendChild(details(a));
      detailRow.hidden = !open;
      expand.setAttribute("aria-expanded", open ? "true" : "false");
    });
    var resend = gw.el("button", "Resend", "small resend");
    resend.type = "button";
    resend.addEventListener("click", function () {
      resend.disabled = true;
      gw.api("POST", "/api/v1/deliveries/" + encodeURIComponent(a.delivery_id) + "/resend").then(function (r) {
        resend.disabled = false;
        status.textContent = r.ok ? "Delivery " + a.delivery_id + " queued to be sent again now." : ((r.data && r.data.detail) || ("failed: " + r.status));
      });
    });
    actions.appendChild(expand);
    actions.appendChild(resend);
    tr.appendChild(actions);
    return [tr, detailRow];
  }
  function load(append) {
    status.textContent = "Loading…";
    gw.api("GET", "/api/v1/webhooks/" + encodeURIComponent(id) + "/attempts?" + query()).then(function (r) {
      if (!r.ok) { status.textContent = (r.data && r.data.detail) || ("failed: " + r.status); return; }
      if (!append) tbody.textContent = "";
      var items = r.data.results || [];
      var base = tbody.children.length;
      items.forEach(function (a, i) { row(a, base + i).forEach(function (tr) { tbody.appendChild(tr); }); });
      status.textContent = (r.data.count || 0) + " attempt(s).";
      more.hidden = !r.data.next;
      filters.setAttribute("data-loaded", "true");
    });
  }
  filters.addEventListener("submit", function (e) { e.preventDefault(); page = 1; load(false); });
  more.addEventListener("click", function () { page += 1; load(true); });
  document.getElementById("recover").addEventListener("submit", function (e) {
    e.preventDefault();
    var since = iso($("recover-since").value);
    if (!since) { status.textContent = "Choose a time to recover from."; return; }
    gw.api("POST", "/api/v1/webhooks/" + encodeURIComponent(id) + "/recover", { since: since }).then(function (r) {
      status.textContent = r.ok ? r.data.requeued + " failed deliveries queued again." : ((r.data && r.data.detail) || ("failed: " + r.status));
    });
  });
  load(false);
});
