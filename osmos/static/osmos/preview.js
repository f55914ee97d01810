// The live preview of a destination's first request (templates/connectors/edit.html): after
// each change of the URL, method, write mode or body template, ask the server to build it again.
(function () {
  "use strict";
  var block = document.getElementById("request-preview");
  if (!block) return;
  // On the destination page (no form) the saved settings are previewed once.
  var form = block.closest("form");
  var names = ["url", "method", "write_mode", "body_template"];
  var timer = null;
  var latest = 0;

  function refresh() {
    var params = new URLSearchParams();
    names.forEach(function (name) {
      if (!form) return;
      var field = form.querySelector("[name=" + name + "]:checked") ||
        form.querySelector("[name=" + name + "]:not([type=radio])");
      if (field) params.set(name, field.value);
    });
    var ticket = ++latest;
    fetch(block.dataset.previewUrl + "?" + params.toString(), { credentials: "same-origin" })
      .then(function (response) { return response.ok ? response.text() : null; })
      .then(function (html) {
        if (html !== null && ticket === latest) block.innerHTML = html;
      })
      .catch(function () {});
  }

  function schedule(event) {
    if (names.indexOf(event.target.name) < 0) return;
    clearTimeout(timer);
    timer = setTimeout(refresh, 400);
  }

  if (form) {
    form.addEventListener("input", schedule);
    form.addEventListener("change", schedule);
  }
  refresh();
})();
