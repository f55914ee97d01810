// osmos: the few dynamic bits of the pages. Everything works without it (forms post normally);
// this only adds copy buttons, confirmations and the editable row tables.
(function () {
  "use strict";
  document.documentElement.classList.add("js");

  document.addEventListener("change", function (event) {
    var el = event.target;
    if (el.matches("[data-autosubmit]")) el.form.requestSubmit();
    if (el.matches("[data-toggle-group]")) syncToggles();
    if (el.matches("[data-mapping-select]")) updateMappingWarning(el);
  });

  // Forms that destroy or replace something ask first.
  document.addEventListener("submit", function (event) {
    var form = event.target;
    var submitter = event.submitter;
    var message = (submitter && submitter.dataset.confirm) || form.dataset.confirm;
    if (message && !window.confirm(message)) event.preventDefault();
  });

  // Time-zone pickers: the browser's own zone first in the list, one click to use it, and
  // filled in for a new pipeline.
  document.querySelectorAll("[data-zone-picker]").forEach(function (input) {
    var zone;
    try { zone = Intl.DateTimeFormat().resolvedOptions().timeZone; } catch (e) { return; }
    var list = input.list;
    if (!zone || !list || !list.querySelector('option[value="' + zone + '"]')) return;
    var first = document.createElement("option");
    first.value = zone;
    first.label = zone + " (this browser)";
    list.insertBefore(first, list.firstChild);
    var hint = input.parentElement.querySelector("[data-zone-hint]");
    if (hint) {
      var use = hint.querySelector("[data-use-zone]");
      use.textContent = zone;
      use.addEventListener("click", function () {
        input.value = zone;
        input.dispatchEvent(new Event("change", { bubbles: true }));
      });
      hint.hidden = false;
    }
    if (input.hasAttribute("data-zone-prefill") && input.value === "UTC") input.value = zone;
  });

  document.addEventListener("click", function (event) {
    var button = event.target.closest("button[data-copy]");
    if (button) copyFrom(button);
    var rowButton = event.target.closest("button[data-row-action]");
    if (rowButton) {
      event.preventDefault();
      rowAction(rowButton);
    }
  });

  function copyFrom(button) {
    var source = document.querySelector(button.dataset.copy);
    if (!source) return;
    var text = source.value !== undefined ? source.value : source.textContent;
    var done = function () {
      var label = button.textContent;
      button.textContent = "Copied";
      setTimeout(function () { button.textContent = label; }, 1500);
    };
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(text).then(done);
    } else {
      // Plain http (the embedded default): fall back to selecting the text.
      if (source.select) source.select();
      else window.getSelection().selectAllChildren(source);
      document.execCommand("copy");
      done();
    }
  }

  // Editable row tables (schema fields, headers): add, delete, move up/down.
  function rowAction(button) {
    var action = button.dataset.rowAction;
    if (action === "add") {
      var table = document.getElementById(button.dataset.table);
      var template = document.getElementById(button.dataset.template);
      var tbody = table.tBodies[0];
      var row = template.content.firstElementChild.cloneNode(true);
      var key = "n" + Date.now().toString(36) + Math.floor(Math.random() * 1000);
      row.querySelectorAll("[data-key]").forEach(function (el) { el.value = key; });
      row.querySelectorAll("[id*='__key__']").forEach(function (el) { el.id = el.id.replace("__key__", key); });
      row.querySelectorAll("label[for*='__key__']").forEach(function (el) { el.htmlFor = el.htmlFor.replace("__key__", key); });
      tbody.appendChild(row);
      renumber(table);
      var first = row.querySelector("input[type=text]");
      if (first) first.focus();
      return;
    }
    var tr = button.closest("tr");
    var body = tr.parentNode;
    var tableEl = tr.closest("table");
    if (action === "delete") {
      var error = tr.nextElementSibling;
      if (error && error.classList.contains("row-error")) error.remove();
      var focusTarget = tr.previousElementSibling || tr.nextElementSibling;
      tr.remove();
      renumber(tableEl);
      if (focusTarget) { var f = focusTarget.querySelector("input,button"); if (f) f.focus(); }
    } else if (action === "up" || action === "down") {
      var rows = Array.prototype.filter.call(body.rows, function (r) { return !r.classList.contains("row-error"); });
      var i = rows.indexOf(tr);
      var j = action === "up" ? i - 1 : i + 1;
      if (j < 0 || j >= rows.length) return;
      body.querySelectorAll(".row-error").forEach(function (r) { r.remove(); });
      if (action === "up") body.insertBefore(tr, rows[j]);
      else body.insertBefore(rows[j], tr);
      renumber(tableEl);
      button.focus();
    }
  }

  function renumber(table) {
    var n = 0;
    Array.prototype.forEach.call(table.tBodies[0].rows, function (row) {
      if (row.classList.contains("row-error")) return;
      n += 1;
      var cell = row.querySelector(".row-number");
      if (cell) cell.textContent = n;
    });
    var empty = document.querySelector("[data-empty-for='" + table.id + "']");
    if (empty) empty.hidden = n > 0;
  }

  // Sections shown only for one choice of a radio group (destination settings, batch size).
  function syncToggles() {
    document.querySelectorAll("[data-show-when]").forEach(function (section) {
      var parts = section.dataset.showWhen.split("=");
      var checked = document.querySelector("input[name='" + parts[0] + "']:checked");
      var visible = checked && checked.value === parts[1];
      section.hidden = !visible;
      section.querySelectorAll("input,select,textarea").forEach(function (el) {
        if (el.dataset.requiredWhenShown !== undefined) el.required = visible;
      });
    });
  }

  // Pipeline mapping: warn at once when the chosen source field's type does not fit.
  function updateMappingWarning(select) {
    var row = select.closest("tr");
    var warning = row.querySelector(".type-warning");
    if (!warning) return;
    var option = select.selectedOptions[0];
    var sourceType = option ? option.dataset.type : "";
    var sourceNullable = option ? option.dataset.nullable === "true" : false;
    var destType = select.dataset.destType;
    var destNullable = select.dataset.destNullable === "true";
    var message = "";
    if (!sourceType) {
      message = destNullable ? "" : "Required field: choose a source field.";
    } else if (!(sourceType === destType || destType === "json" || (sourceType === "integer" && destType === "number"))) {
      message = "Type mismatch: " + sourceType + " cannot feed " + destType + ".";
    } else if (sourceNullable && !destNullable) {
      message = "The source field may be empty but this field is required.";
    }
    warning.textContent = message;
  }

  document.addEventListener("DOMContentLoaded", function () {
    syncToggles();
    document.querySelectorAll("table[data-rows]").forEach(renumber);
    document.querySelectorAll("[data-mapping-select]").forEach(updateMappingWarning);
  });
})();
