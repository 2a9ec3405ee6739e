// Shared by every console page: calls to the JSON API with the session's CSRF token, and the
// display of the API's problem bodies next to the field they name. Data is only ever shown
// with textContent, never as HTML.
"use strict";
(function () {
  function csrf() {
    var m = document.querySelector('meta[name="csrf-token"]');
    return m ? m.getAttribute("content") : "";
  }

  // fetch() of /api/v1/...: resolves to {ok, status, data} (data: parsed JSON or null).
  function api(method, path, body) {
    var opts = { method: method, credentials: "same-origin", headers: { "Accept": "application/json" } };
    if (method !== "GET" && method !== "HEAD") opts.headers["X-CSRF-Token"] = csrf();
    if (body !== undefined) {
      opts.headers["Content-Type"] = "application/json";
      opts.body = JSON.stringify(body);
    }
    return fetch(path, opts).then(function (r) {
      if (r.status === 401) { window.location.assign("/console/sign-in"); }
      return r.text().then(function (t) {
        var data = null;
        try { data = t ? JSON.parse(t) : null; } catch (e) { data = { detail: t }; }
        return { ok: r.ok, status: r.status, data: data };
      });
    }, function (err) {
      return { ok: false, status: 0, data: { detail: "the gateway did not answer: " + err } };
    });
  }

  function el(tag, text, cls) {
    var e = document.createElement(tag);
    if (text !== undefined && text !== null) e.textContent = String(text);
    if (cls) e.className = cls;
    return e;
  }

  function clearErrors(root) {
    root.querySelectorAll(".field-error").forEach(function (p) { p.hidden = true; p.textContent = ""; });
    root.querySelectorAll("[aria-invalid]").forEach(function (i) {
      i.removeAttribute("aria-invalid");
      var d = (i.getAttribute("aria-describedby") || "").split(" ").filter(function (x) { return x && x.indexOf("err-") !== 0; });
      if (d.length) i.setAttribute("aria-describedby", d.join(" ")); else i.removeAttribute("aria-describedby");
    });
  }

  // The element for an API field path ("filter.rules[0].op"): the closest [data-field] going up
  // the path (filter.rules[0].op, filter.rules[0], filter.rules, filter).
  function fieldFor(root, path) {
    var p = path;
    while (p) {
      var f = root.querySelector('[data-field="' + p.replace(/"/g, "") + '"]');
      if (f) return f;
      var cut = Math.max(p.lastIndexOf("."), p.lastIndexOf("["));
      p = cut > 0 ? p.slice(0, cut) : "";
    }
    return null;
  }

  // Shows a problem body: the message next to its field (aria-describedby) and in the summary.
  function showProblem(root, summary, problem) {
    clearErrors(root);
    var detail = (problem && (problem.detail || problem.title)) || "the request failed";
    var field = problem && problem.field;
    summary.textContent = "";
    summary.appendChild(el("strong", "Not saved: "));
    summary.appendChild(document.createTextNode(detail));
    summary.hidden = false;
    if (field) {
      var f = fieldFor(root, field);
      if (f) {
        var p = f.querySelector(".field-error");
        if (!p) {
          p = el("p", "", "field-error");
          p.id = "err-" + field.replace(/[^A-Za-z0-9_-]/g, "-");
          f.appendChild(p);
        }
        p.textContent = detail;
        p.hidden = false;
        var input = f.querySelector("input, select, textarea");
        if (input) {
          input.setAttribute("aria-invalid", "true");
          var d = input.getAttribute("aria-describedby");
          input.setAttribute("aria-describedby", (d ? d + " " : "") + p.id);
        }
      }
    }
    summary.focus();
  }

  function when(iso) {
    if (!iso) return "";
    var d = new Date(iso);
    return isNaN(d) ? String(iso) : d.toLocaleString();
  }

  window.gw = { api: api, el: el, clearErrors: clearErrors, showProblem: showProblem, when: when, csrf: csrf };
})();
