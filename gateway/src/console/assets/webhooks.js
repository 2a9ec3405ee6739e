// The webhooks list: activate / de-activate from the list (PUT is_webhook_enabled).
"use strict";
document.addEventListener("DOMContentLoaded", function () {
  var status = document.getElementById("list-status");
  document.querySelectorAll("button.toggle").forEach(function (b) {
    b.addEventListener("click", function () {
      var on = b.getAttribute("data-enabled") !== "true";
      b.disabled = true;
      gw.api("PUT", "/api/v1/webhooks/" + encodeURIComponent(b.getAttribute("data-id")) + "/", { is_webhook_enabled: on })
        .then(function (r) {
          b.disabled = false;
          if (r.ok) { window.location.reload(); return; }
          status.textContent = (r.data && r.data.detail) || ("failed: " + r.status);
        });
    });
  });
});
