// The webhook editor: fills the form from the (masked) API view, builds the API body from the
// form, and saves through /api/v1/webhooks/. On edit only the fields that changed are sent, so
// masked secrets and unchanged values are never sent back. A refusal's message appears next to
// the field the problem body names and in the summary at the top.
"use strict";
document.addEventListener("DOMContentLoaded", function () {
  var form = document.getElementById("editor");
  if (!form) return;
  var id = form.getAttribute("data-id");
  var summary = document.getElementById("summary");
  var saved = document.getElementById("saved");
  var $ = function (x) { return document.getElementById(x); };
  var MAX_HEADERS = 20;
  var initial = null;
  var current = null;

  function list(s) { return (s || "").split(/[,\n]/).map(function (x) { return x.trim(); }).filter(Boolean); }
  function orNull(s) { s = (s || "").trim(); return s ? s : null; }
  function num(s) { s = String(s || "").trim(); return s === "" ? null : Number(s); }
  function parseJson(text, field) {
    text = (text || "").trim();
    if (!text) return undefined;
    try { return JSON.parse(text); } catch (e) { throw { field: field, detail: field + ": is not valid JSON (" + e.message + ")" }; }
  }

  // ---- dynamic rows
  function labelled(input, label) { input.setAttribute("aria-label", label); return input; }
  function removeButton(row, what) {
    var b = gw.el("button", "Remove", "small");
    b.type = "button";
    b.setAttribute("aria-label", "Remove " + what);
    b.addEventListener("click", function () { row.remove(); });
    return b;
  }
  function addHeader(name, value, secret) {
    var rows = $("headers-rows");
    if (rows.children.length >= MAX_HEADERS) return;
    var n = rows.children.length + 1;
    var row = gw.el("div", null, "row header-row");
    var k = labelled(document.createElement("input"), "Header " + n + " name"); k.className = "h-name"; k.value = name || "";
    var v = labelled(document.createElement("input"), "Header " + n + " value"); v.className = "h-value"; v.value = value || "";
    var l = gw.el("label"); var s = document.createElement("input"); s.type = "checkbox"; s.className = "h-secret"; s.checked = !!secret;
    l.appendChild(s); l.appendChild(document.createTextNode(" secret"));
    row.appendChild(k); row.appendChild(v); row.appendChild(l); row.appendChild(removeButton(row, "header " + n));
    rows.appendChild(row);
  }
  var OPS = ["is", "is_not", "in", "not_in", "gt", "gte", "lt", "lte", "exists", "not_exists", "matches", "contains"];
  function addRule(group, rule) {
    var rules = group.querySelector(".rules");
    var n = rules.children.length + 1;
    var g = group.getAttribute("data-n");
    var row = gw.el("div", null, "row rule");
    var f = labelled(document.createElement("input"), "Group " + g + " rule " + n + " field"); f.className = "r-field";
    f.placeholder = "service, alert_source or a path (severity)"; f.value = (rule && rule.field) || "";
    var op = labelled(document.createElement("select"), "Group " + g + " rule " + n + " operator"); op.className = "r-op";
    OPS.forEach(function (o) { var opt = gw.el("option", o); opt.value = o; op.appendChild(opt); });
    op.value = (rule && rule.op) || "is";
    var v = labelled(document.createElement("input"), "Group " + g + " rule " + n + " value"); v.className = "r-value";
    var val = rule ? rule.value : "";
    v.value = Array.isArray(val) ? val.join(", ") : (val === undefined || val === null ? "" : (typeof val === "string" ? val : JSON.stringify(val)));
    row.appendChild(f); row.appendChild(op); row.appendChild(v); row.appendChild(removeButton(row, "rule " + n + " of group " + g));
    rules.appendChild(row);
  }
  function addGroup(group) {
    var groups = $("groups");
    var n = groups.children.length + 1;
    var box = gw.el("div", null, "group");
    box.setAttribute("data-n", String(n));
    box.setAttribute("data-field", "filter.rules[" + (n - 1) + "]");
    var head = gw.el("div", null, "row");
    var m = labelled(document.createElement("select"), "Rules of group " + n + " are combined with"); m.className = "g-match";
    [["all", "AND (all rules)"], ["any", "OR (any rule)"]].forEach(function (o) { var opt = gw.el("option", o[1]); opt.value = o[0]; m.appendChild(opt); });
    m.value = (group && group.match) || "all";
    head.appendChild(gw.el("span", "Group " + n + ": rules combined with", "label"));
    head.appendChild(m);
    var add = gw.el("button", "Add rule", "small"); add.type = "button";
    add.setAttribute("aria-label", "Add rule to group " + n);
    add.addEventListener("click", function () { addRule(box); });
    head.appendChild(add);
    head.appendChild(removeButton(box, "group " + n));
    box.appendChild(head);
    box.appendChild(gw.el("div", null, "rules"));
    groups.appendChild(box);
    ((group && group.rules) || [null]).forEach(function (r) { addRule(box, r); });
  }
  function addPlugin(p) {
    var rows = $("plugin-rows");
    var n = rows.children.length + 1;
    var row = gw.el("div", null, "row plugin-row");
    row.setAttribute("data-field", "plugins[" + (n - 1) + "]");
    var name = labelled(document.createElement("input"), "Plugin " + n + " name"); name.className = "p-name"; name.setAttribute("list", "plugin-names"); name.value = (p && p.name) || "";
    var ver = labelled(document.createElement("input"), "Plugin " + n + " version (empty: newest)"); ver.className = "p-version"; ver.value = (p && p.version) || "";
    var cfg = labelled(document.createElement("textarea"), "Plugin " + n + " config (JSON)"); cfg.className = "p-config code"; cfg.rows = 2;
    cfg.value = p && p.config !== undefined && p.config !== null ? JSON.stringify(p.config, null, 1) : "";
    row.appendChild(name); row.appendChild(ver); row.appendChild(cfg); row.appendChild(removeButton(row, "plugin " + n));
    rows.appendChild(row);
  }

  // ---- show only what the chosen types use
  function showFor(prefix, value) {
    form.querySelectorAll("[class*='" + prefix + "-']").forEach(function (e) {
      var m = Array.prototype.find.call(e.classList, function (c) { return c.indexOf(prefix + "-") === 0; });
      if (m) e.hidden = m !== prefix + "-" + value;
    });
  }
  function sync() {
    showFor("auth", $("f-auth-type").value);
    showFor("signing", $("f-signing-type").value);
    showFor("retry", $("f-retry-type").value);
    var k = $("f-scope-kind").value;
    $("f-scope-team").disabled = k === "global";
    $("f-scope-service").disabled = k !== "service";
  }
  ["f-auth-type", "f-signing-type", "f-retry-type", "f-scope-kind"].forEach(function (x) { $(x).addEventListener("change", sync); });
  $("add-header").addEventListener("click", function () { addHeader(); });
  $("add-group").addEventListener("click", function () { addGroup(); });
  $("add-plugin").addEventListener("click", function () { addPlugin(); });

  // ---- the filter: services, alert sources, groups and the raw expression, ANDed
  function splitFilter(f) {
    var out = { services: [], alert_sources: [], groups: null, raw: [] };
    if (!f) return out;
    var parts = f.$and && Object.keys(f).length === 1 ? f.$and : [f];
    parts.forEach(function (p) {
      var keys = Object.keys(p || {});
      if (keys.length === 1 && keys[0] === "services" && Array.isArray(p.services)) out.services = p.services;
      else if (keys.length === 1 && keys[0] === "alert_sources" && Array.isArray(p.alert_sources)) out.alert_sources = p.alert_sources;
      else if (!out.groups && Array.isArray(p.rules) && keys.every(function (k) { return k === "match" || k === "rules"; }) &&
               p.rules.every(function (g) { return Array.isArray(g.rules) && g.rules.every(function (r) { return !r.rules; }); })) out.groups = p;
      else out.raw.push(p);
    });
    return out;
  }
  function ruleValue(op, text) {
    if (op === "exists" || op === "not_exists") return undefined;
    if (op === "in" || op === "not_in") return list(text);
    if (["gt", "gte", "lt", "lte"].indexOf(op) >= 0 && text.trim() !== "" && !isNaN(Number(text))) return Number(text);
    return text;
  }
  function buildFilter() {
    var parts = [];
    var s = list($("f-services").value); if (s.length) parts.push({ services: s });
    var a = list($("f-alert-sources").value); if (a.length) parts.push({ alert_sources: a });
    var groups = [];
    $("groups").querySelectorAll(".group").forEach(function (g) {
      var rules = [];
      g.querySelectorAll(".rule").forEach(function (r) {
        var field = r.querySelector(".r-field").value.trim();
        if (!field) return;
        var op = r.querySelector(".r-op").value;
        var rule = { field: field, op: op };
        var v = ruleValue(op, r.querySelector(".r-value").value);
        if (v !== undefined) rule.value = v;
        rules.push(rule);
      });
      if (rules.length) groups.push({ match: g.querySelector(".g-match").value, rules: rules });
    });
    if (groups.length) parts.push({ match: $("f-groups-match").value, rules: groups });
    var raw = parseJson($("f-filter-raw").value, "filter");
    if (raw !== undefined) parts.push(raw);
    if (!parts.length) return null;
    return parts.length === 1 ? parts[0] : { $and: parts };
  }

  // ---- form <-> API
  function fill(w) {
    $("f-name").value = w.name || "";
    $("f-description").value = w.description || "";
    $("f-failure_email").value = w.failure_email || "";
    var sc = w.scope || { kind: "global" };
    $("f-scope-kind").value = sc.kind || "global";
    $("f-scope-team").value = sc.team_id || "";
    $("f-scope-service").value = sc.service_id || "";
    $("f-urls").value = (w.urls || (w.url ? [w.url] : [])).join("\n");
    $("f-method").value = w.http_method || "POST";
    $("headers-rows").textContent = "";
    var h = {};
    try { h = typeof w.headers === "string" ? JSON.parse(w.headers) : (w.headers || {}); } catch (e) { h = {}; }
    var secretNames = (w.secret_headers || []).map(function (x) { return x.toLowerCase(); });
    Object.keys(h || {}).forEach(function (k) { addHeader(k, typeof h[k] === "string" ? h[k] : JSON.stringify(h[k]), secretNames.indexOf(k.toLowerCase()) >= 0); });
    form.querySelectorAll('input[name="send_as"]').forEach(function (r) { r.checked = r.value === (w.send_as || "body"); });
    var known = [];
    form.querySelectorAll('input[name="trigger"]').forEach(function (c) { known.push(c.value); c.checked = (w.trigger_events || []).indexOf(c.value) >= 0; });
    $("f-custom-triggers").value = (w.trigger_events || []).filter(function (t) { return known.indexOf(t) < 0; }).join(", ");
    var f = splitFilter(w.filter);
    $("f-services").value = f.services.join(", ");
    $("f-alert-sources").value = f.alert_sources.join(", ");
    $("groups").textContent = "";
    if (f.groups) { $("f-groups-match").value = f.groups.match || "all"; f.groups.rules.forEach(addGroup); }
    $("f-filter-raw").value = f.raw.length ? JSON.stringify(f.raw.length === 1 ? f.raw[0] : { $and: f.raw }, null, 1) : "";
    $("f-integration-filter").value = (w.integration_filter || []).join(", ");
    var au = w.auth || { type: "none" };
    $("f-auth-type").value = au.type || "none";
    $("f-auth-username").value = au.username || "";
    $("f-auth-password").value = au.password || "";
    $("f-auth-name").value = au.name || "";
    $("f-auth-value").value = au.value || "";
    $("f-auth-in").value = au["in"] || "header";
    $("f-auth-token").value = au.token || "";
    var sg = w.signing || { type: "standard_webhooks" };
    $("f-signing-type").value = sg.type || "standard_webhooks";
    $("f-signing-header").value = sg.header || "X-Signature";
    $("f-signing-secret").value = "";
    var cc = w.client_certificate;
    $("f-cc-cert").value = cc ? cc.certificate : "";
    $("f-cc-key").value = cc ? cc.private_key : "";
    $("f-cc-info").textContent = cc ? (cc.subject || "") + (cc.not_after ? " — expires " + cc.not_after : "") : "";
    $("f-forward-all").checked = w.forward_all !== false;
    $("f-data").value = w.data || "";
    $("f-trigger-template").value = w.trigger_template || "";
    $("plugin-rows").textContent = "";
    (w.plugins || []).forEach(addPlugin);
    $("f-authenticator").value = (w.authenticator && w.authenticator.name) || "";
    $("f-authenticator-config").value = w.authenticator && w.authenticator.config ? JSON.stringify(w.authenticator.config, null, 1) : "";
    var r = w.retry || { type: "default" };
    $("f-retry-type").value = r.type || "default";
    if (r.type === "fixed") { $("f-retry-count").value = r.count; $("f-retry-interval").value = r.interval_secs; }
    if (r.type === "schedule") $("f-retry-delays").value = (r.delays_secs || []).join(", ");
    $("f-timeout").value = w.timeout_secs || "";
    var ad = w.auto_disable || {};
    $("f-disable-failures").value = ad.after_failures || "";
    $("f-disable-days").value = ad.after_days || "";
    $("f-private").checked = !!w.include_private_payloads;
    $("f-enabled").checked = w.is_webhook_enabled !== false;
    $("toggle") && ($("toggle").textContent = w.is_webhook_enabled === false ? "Activate" : "De-activate");
    sync();
  }

  function build() {
    var body = {};
    body.name = $("f-name").value.trim();
    body.description = orNull($("f-description").value);
    body.failure_email = orNull($("f-failure_email").value);
    var k = $("f-scope-kind").value;
    if (k === "global") body.scope = "global";
    else if (k === "team") body.scope = { kind: "team", team_id: $("f-scope-team").value.trim() };
    else body.scope = { kind: "service", team_id: orNull($("f-scope-team").value), service_id: $("f-scope-service").value.trim() };
    body.urls = list($("f-urls").value.replace(/,/g, "\n"));
    body.http_method = $("f-method").value;
    var headers = {}, secret = [], any = false;
    $("headers-rows").querySelectorAll(".header-row").forEach(function (r) {
      var n = r.querySelector(".h-name").value.trim();
      if (!n) return;
      any = true;
      headers[n] = r.querySelector(".h-value").value;
      if (r.querySelector(".h-secret").checked) secret.push(n);
    });
    body.headers = any ? headers : null;
    body.secret_headers = secret;
    var sendAs = form.querySelector('input[name="send_as"]:checked');
    body.send_as = sendAs ? sendAs.value : "body";
    var trig = [];
    form.querySelectorAll('input[name="trigger"]:checked').forEach(function (c) { trig.push(c.value); });
    body.trigger_events = trig.concat(list($("f-custom-triggers").value));
    body.filter = buildFilter();
    var integ = list($("f-integration-filter").value);
    body.integration_filter = integ.length ? integ : null;
    var at = $("f-auth-type").value;
    if (at === "basic") body.auth = { type: "basic", username: $("f-auth-username").value, password: $("f-auth-password").value };
    else if (at === "api_key") body.auth = { type: "api_key", name: $("f-auth-name").value.trim(), value: $("f-auth-value").value, "in": $("f-auth-in").value };
    else if (at === "bearer") body.auth = { type: "bearer", token: $("f-auth-token").value };
    else body.auth = { type: "none" };
    var st = $("f-signing-type").value;
    body.signing = { type: st };
    if (st === "hmac_sha512") body.signing.header = $("f-signing-header").value.trim();
    var sec = $("f-signing-secret").value;
    if (sec && st !== "none") body.signing.secret = sec;
    var ccCert = $("f-cc-cert").value.trim();
    body.client_certificate = ccCert ? { certificate: ccCert, private_key: $("f-cc-key").value } : null;
    body.forward_all = $("f-forward-all").checked;
    body.data = orNull($("f-data").value);
    body.trigger_template = orNull($("f-trigger-template").value);
    var plugins = [];
    $("plugin-rows").querySelectorAll(".plugin-row").forEach(function (r, i) {
      var n = r.querySelector(".p-name").value.trim();
      if (!n) return;
      var p = { name: n };
      var v = r.querySelector(".p-version").value.trim(); if (v) p.version = v;
      var c = parseJson(r.querySelector(".p-config").value, "plugins[" + i + "].config");
      p.config = c === undefined ? {} : c;
      plugins.push(p);
    });
    body.plugins = plugins;
    var an = $("f-authenticator").value.trim();
    if (an) {
      var ac = parseJson($("f-authenticator-config").value, "authenticator.config");
      body.authenticator = { name: an, config: ac === undefined ? {} : ac };
    } else body.authenticator = null;
    var rt = $("f-retry-type").value;
    if (rt === "fixed") body.retry = { type: "fixed", count: num($("f-retry-count").value), interval_secs: num($("f-retry-interval").value) };
    else if (rt === "schedule") body.retry = { type: "schedule", delays_secs: list($("f-retry-delays").value).map(Number) };
    else body.retry = { type: "default" };
    var t = num($("f-timeout").value); if (t !== null) body.timeout_secs = t;
    body.auto_disable = { after_failures: num($("f-disable-failures").value), after_days: num($("f-disable-days").value) };
    body.include_private_payloads = $("f-private").checked;
    body.is_webhook_enabled = $("f-enabled").checked;
    return body;
  }

  // Only what changed since the form was filled (edit), everything (create).
  function changes(body) {
    if (!initial) return body;
    var out = {};
    Object.keys(body).forEach(function (k) { if (JSON.stringify(body[k]) !== JSON.stringify(initial[k])) out[k] = body[k]; });
    return out;
  }

  function problem(p) { gw.showProblem(form, summary, p); }

  form.addEventListener("submit", function (ev) {
    ev.preventDefault();
    saved.textContent = "";
    summary.hidden = true;
    gw.clearErrors(form);
    var body;
    try { body = changes(build()); } catch (e) { problem(e); return; }
    var req = id ? gw.api("PUT", "/api/v1/webhooks/" + encodeURIComponent(id) + "/", body) : gw.api("POST", "/api/v1/webhooks/", body);
    $("save").disabled = true;
    req.then(function (r) {
      $("save").disabled = false;
      if (!r.ok) { problem(r.data); return; }
      if (!id) { window.location.assign("/console/webhooks/" + encodeURIComponent(r.data.id) + "?created=1"); return; }
      current = r.data; fill(r.data); initial = build();
      saved.textContent = "Saved.";
    });
  });

  // ---- actions of a stored webhook
  if (id) {
    var base = "/api/v1/webhooks/" + encodeURIComponent(id);
    $("test").addEventListener("click", function () {
      $("test").disabled = true;
      var out = $("test-result");
      ["test-status", "test-outcome", "test-error", "test-response"].forEach(function (x) { $(x).textContent = "…"; });
      out.hidden = false;
      gw.api("POST", base + "/test").then(function (r) {
        $("test").disabled = false;
        if (!r.ok) { $("test-status").textContent = ""; $("test-outcome").textContent = "not sent"; $("test-error").textContent = (r.data && r.data.detail) || String(r.status); $("test-response").textContent = ""; return; }
        var a = r.data;
        $("test-status").textContent = a.status_code === null || a.status_code === undefined ? "no response" : String(a.status_code);
        $("test-outcome").textContent = a.outcome || "";
        $("test-error").textContent = a.error || "none";
        $("test-response").textContent = a.response_body || "";
      });
    });
    $("toggle").addEventListener("click", function () {
      var on = current && current.is_webhook_enabled === false;
      gw.api("PUT", base + "/", { is_webhook_enabled: on }).then(function (r) {
        if (!r.ok) { problem(r.data); return; }
        current = r.data; fill(r.data); initial = build();
        saved.textContent = on ? "Activated." : "De-activated: no deliveries until it is activated again.";
      });
    });
    var dialog = $("confirm-delete");
    $("delete").addEventListener("click", function () { dialog.showModal(); });
    $("confirm-no").addEventListener("click", function () { dialog.close(); });
    $("confirm-yes").addEventListener("click", function () {
      gw.api("DELETE", base + "/").then(function (r) {
        dialog.close();
        if (r.ok) window.location.assign("/console/webhooks"); else problem(r.data);
      });
    });
    var out = $("secret-out");
    if ($("reveal-secret")) {
      $("reveal-secret").addEventListener("click", function () {
        gw.api("POST", "/console/webhooks/" + encodeURIComponent(id) + "/secret").then(function (r) {
          out.textContent = r.ok ? (r.data.secret || "this webhook does not sign") : ((r.data && r.data.detail) || String(r.status));
        });
      });
      $("rotate-secret").addEventListener("click", function () {
        gw.api("POST", base + "/secret/rotate", {}).then(function (r) {
          out.textContent = r.ok ? ("New secret (shown once): " + r.data.secret + " · the old one signs until " + gw.when(r.data.old_secret_expires_at)) : ((r.data && r.data.detail) || String(r.status));
        });
      });
    }
    gw.api("GET", base + "/").then(function (r) {
      if (!r.ok) { problem(r.data); return; }
      current = r.data; fill(r.data); initial = build();
      if (/created=1/.test(window.location.search)) saved.textContent = "Created.";
      form.setAttribute("data-loaded", "true");
    });
  } else {
    addHeader();
    sync();
    form.setAttribute("data-loaded", "true");
  }

  // Plugin names as suggestions only; a team portal session lists no plugins (and needs none:
  // the names are typed, and the API checks them on save).
  if (form.getAttribute("data-portal") !== "true") gw.api("GET", "/api/v1/plugins").then(function (r) {
    var dl = $("plugin-names");
    var items = (r.ok && r.data && (r.data.results || r.data)) || [];
    var seen = {};
    (Array.isArray(items) ? items : []).forEach(function (p) {
      if (!p.name || seen[p.name]) return;
      seen[p.name] = true;
      var o = document.createElement("option"); o.value = p.name; dl.appendChild(o);
    });
  });

  // ---- the placeholder helper: typing {{ offers the event's fields
  var PLACEHOLDERS = ["event_type", "message", "description", "status", "severity", "service.id", "service.name",
    "service.slug", "alert_source.short_name", "team_id", "incident.id", "incident.title", "incident.status",
    "incident.url", "alert_group.id", "alert_group.title", "alert_group.state", "alert_group.permalinks.web",
    "alert_payload", "alert_payload.labels", "user.username", "owner.id"];
  var box = $("placeholder-list");
  var target = null, active = 0, shown = [];
  function hide() { box.hidden = true; target = null; }
  function typed(t) {
    var before = t.value.slice(0, t.selectionStart);
    var m = /\{\{\s*([A-Za-z0-9_.]*)$/.exec(before);
    return m ? m : null;
  }
  function insert(name) {
    if (!target) return;
    var t = target, m = typed(t);
    if (!m) return hide();
    var start = t.selectionStart - m[0].length;
    var after = t.value.slice(t.selectionStart);
    var text = "{{ " + name + " }}";
    t.value = t.value.slice(0, start) + text + after.replace(/^\s*\}\}/, "");
    t.selectionStart = t.selectionEnd = start + text.length;
    hide(); t.focus();
  }
  function render() {
    box.textContent = "";
    shown.forEach(function (p, i) {
      var li = gw.el("li", "{{ " + p + " }}");
      li.setAttribute("role", "option");
      li.id = "ph-" + i;
      li.setAttribute("aria-selected", i === active ? "true" : "false");
      li.addEventListener("mousedown", function (e) { e.preventDefault(); insert(p); });
      box.appendChild(li);
    });
  }
  form.querySelectorAll("textarea.placeholders").forEach(function (t) {
    t.addEventListener("input", function () {
      var m = typed(t);
      if (!m) return hide();
      shown = PLACEHOLDERS.filter(function (p) { return p.indexOf(m[1]) === 0; });
      if (!shown.length) return hide();
      target = t; active = 0;
      t.parentNode.appendChild(box);
      render(); box.hidden = false;
    });
    t.addEventListener("keydown", function (e) {
      if (box.hidden || target !== t) return;
      if (e.key === "ArrowDown") { active = (active + 1) % shown.length; render(); e.preventDefault(); }
      else if (e.key === "ArrowUp") { active = (active + shown.length - 1) % shown.length; render(); e.preventDefault(); }
      else if (e.key === "Enter" || e.key === "Tab") { insert(shown[active]); e.preventDefault(); }
      else if (e.key === "Escape") { hide(); }
    });
    t.addEventListener("blur", function () { setTimeout(hide, 150); });
  });
});
