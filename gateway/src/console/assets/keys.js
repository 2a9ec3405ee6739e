// The keys page: creates a key through POST /api/v1/keys and shows its token once (it is in no
// page the server renders, so a reload shows it no more); revokes with DELETE /api/v1/keys/{id}.
"use strict";
(function () {
  var form = document.getElementById("key-form");
  if (!form) return;
  var problem = document.getElementById("key-problem");
  var created = document.getElementById("key-created");

  function row(k) {
    var tr = document.createElement("tr");
    tr.setAttribute("data-id", k.id);
    var name = gw.el("td", k.name);
    name.appendChild(gw.el("div", k.id, "muted small"));
    tr.appendChild(name);
    [k.role, k.team_id || "", k.created_at, k.expires_at || "never", "never", "active"].forEach(function (t) {
      tr.appendChild(gw.el("td", t));
    });
    tr.appendChild(gw.el("td", ""));
    return tr;
  }

  form.addEventListener("submit", function (ev) {
    ev.preventDefault();
    var body = { name: form.elements.name.value, role: form.elements.role.value };
    var team = form.elements.team_id.value.trim();
    if (team) body.team_id = team;
    var exp = form.elements.expires_at.value;
    if (exp) body.expires_at = new Date(exp).toISOString();
    gw.api("POST", "/api/v1/keys", body).then(function (r) {
      if (!r.ok) { created.hidden = true; gw.showProblem(form, problem, r.data); return; }
      gw.clearErrors(form);
      problem.hidden = true;
      document.getElementById("new-key-name").textContent = r.data.name;
      document.getElementById("new-token").value = r.data.token;
      created.hidden = false;
      document.querySelector("#keys tbody").appendChild(row(r.data));
      form.reset();
      document.getElementById("new-token").focus();
    });
  });

  document.addEventListener("click", function (ev) {
    var b = ev.target.closest ? ev.target.closest("button.revoke") : null;
    if (!b) return;
    if (!window.confirm("Revoke the key “" + b.getAttribute("data-name") + "”? Requests with it are refused from now on.")) return;
    gw.api("DELETE", "/api/v1/keys/" + encodeURIComponent(b.getAttribute("data-id"))).then(function (r) {
      var tr = b.closest("tr");
      if (r.ok) {
        tr.querySelector(".key-state").textContent = "revoked";
        b.remove();
      } else {
        gw.showProblem(form, problem, r.data);
      }
    });
  });
})();
