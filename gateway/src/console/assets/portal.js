// The "Portal link" page: mints a link through POST /api/v1/portal/links and shows it once with
// its expiry (it is in no page the server renders). Choosing a webhook sets its team.
"use strict";
(function () {
  var form = document.getElementById("portal-form");
  if (!form) return;
  var problem = document.getElementById("portal-problem");
  var created = document.getElementById("portal-created");
  var team = form.elements.team_id;
  var hook = form.elements.webhook_id;

  hook.addEventListener("change", function () {
    var o = hook.options[hook.selectedIndex];
    var t = o && o.getAttribute("data-team");
    if (t && !team.readOnly) team.value = t;
  });

  form.addEventListener("submit", function (ev) {
    ev.preventDefault();
    var body = { team_id: team.value.trim(), ttl_secs: Number(form.elements.ttl_secs.value) };
    if (hook.value) body.webhook_id = hook.value;
    gw.api("POST", "/api/v1/portal/links", body).then(function (r) {
      if (!r.ok) { created.hidden = true; gw.showProblem(form, problem, r.data); return; }
      gw.clearErrors(form);
      problem.hidden = true;
      document.getElementById("portal-created-team").textContent = r.data.team_id;
      var name = hook.value ? hook.options[hook.selectedIndex].textContent : "";
      document.getElementById("portal-created-webhook").textContent = name ? ", " + name : "";
      var when = document.getElementById("portal-expires");
      when.setAttribute("datetime", r.data.expires_at);
      when.textContent = gw.when(r.data.expires_at);
      document.getElementById("portal-url").value = r.data.url;
      created.hidden = false;
      document.getElementById("portal-url").focus();
    });
  });
})();
