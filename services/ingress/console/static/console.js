// The console's own script: the Live page's event stream, and the CSRF token on every htmx request.
(function () {
  "use strict";
  document.addEventListener("htmx:configRequest", function (e) {
    var token = document.body.getAttribute("data-csrf");
    if (token) { e.detail.headers["X-CSRF-Token"] = token; }
  });
  function live() {
    var list = document.getElementById("live-events");
    if (!list || !window.EventSource) { return; }
    var status = document.getElementById("live-status");
    var source = new EventSource(list.getAttribute("data-src"));
    source.addEventListener("ready", function () { status.textContent = status.getAttribute("data-connected"); });
    source.addEventListener("error", function () { status.textContent = status.getAttribute("data-disconnected"); });
    source.addEventListener("row", function (e) {
      var empty = document.getElementById("live-empty");
      if (empty) { empty.remove(); }
      list.insertAdjacentHTML("afterbegin", e.data);
      while (list.children.length > 200) { list.removeChild(list.lastElementChild); }
    });
    source.addEventListener("end", function () { source.close(); window.location.reload(); });
  }
  if (document.readyState === "loading") { document.addEventListener("DOMContentLoaded", live); } else { live(); }
})();
