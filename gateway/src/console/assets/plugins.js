// The plugins page: "try" posts to /api/v1/plugins/{name}/{version}/try and shows the request
// and log lines (as text); upload posts the chosen file's bytes to /api/v1/plugins.
"use strict";
(function () {
  var tryForm = document.getElementById("try-form");
  if (tryForm) {
    var problem = document.getElementById("try-problem");
    var result = document.getElementById("try-result");
    tryForm.addEventListener("submit", function (ev) {
      ev.preventDefault();
      gw.clearErrors(tryForm);
      problem.hidden = true;
      var body = {};
      try { body.event = JSON.parse(tryForm.elements.event.value); }
      catch (e) { gw.showProblem(tryForm, problem, { detail: "the event is not JSON: " + e.message, field: "event" }); return; }
      try { body.config = JSON.parse(tryForm.elements.config.value || "null"); }
      catch (e) { gw.showProblem(tryForm, problem, { detail: "the config is not JSON: " + e.message, field: "config" }); return; }
      var which = tryForm.elements.plugin.value.split("/");
      var path = "/api/v1/plugins/" + encodeURIComponent(which[0]) + "/" + encodeURIComponent(which[1]) + "/try";
      gw.api("POST", path, body).then(function (r) {
        if (!r.ok) { result.hidden = true; gw.showProblem(tryForm, problem, r.data); return; }
        var d = r.data;
        var summary = d.ok ? (d.skip ? "Skipped the delivery: " + d.skip : "Ran") : "Failed: " + d.error;
        summary += " · " + d.elapsed_ms.toFixed(2) + " ms · memory peak " + (d.memory_peak_bytes / 1048576).toFixed(2) + " MiB";
        document.getElementById("try-summary").textContent = summary;
        var req = "";
        if (d.request) {
          req = d.request.method + " " + d.request.url + "\n";
          d.request.query.forEach(function (q) { req += "query " + q[0] + "=" + q[1] + "\n"; });
          d.request.headers.forEach(function (h) { req += h[0] + ": " + h[1] + "\n"; });
          if (d.request.body !== null) req += "\n" + d.request.body;
        }
        document.getElementById("try-request").textContent = req || "(none)";
        document.getElementById("try-logs").textContent = d.logs.length ? d.logs.join("\n") : "(none)";
        result.hidden = false;
      });
    });
  }

  var up = document.getElementById("upload-form");
  if (up) {
    var upProblem = document.getElementById("upload-problem");
    var done = document.getElementById("upload-done");
    up.addEventListener("submit", function (ev) {
      ev.preventDefault();
      var file = up.elements.file.files[0];
      if (!file) return;
      var q = "name=" + encodeURIComponent(up.elements.name.value) + "&version=" + encodeURIComponent(up.elements.version.value);
      if (up.elements.description.value) q += "&description=" + encodeURIComponent(up.elements.description.value);
      file.arrayBuffer().then(function (bytes) {
        return fetch("/api/v1/plugins?" + q, {
          method: "POST", credentials: "same-origin", body: bytes,
          headers: { "Content-Type": "application/wasm", "X-CSRF-Token": gw.csrf(), "Accept": "application/json" }
        });
      }).then(function (r) {
        return r.text().then(function (t) {
          var data = null;
          try { data = JSON.parse(t); } catch (e) { data = { detail: t }; }
          if (!r.ok) { done.hidden = true; gw.showProblem(up, upProblem, data); return; }
          gw.clearErrors(up);
          upProblem.hidden = true;
          done.textContent = "Uploaded " + data.name + "@" + data.version + " (" + data.kind + "). Reload to see it in the list.";
          done.hidden = false;
        });
      });
    });
  }
})();
