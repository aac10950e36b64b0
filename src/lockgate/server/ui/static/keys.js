// Keyboard shortcuts for the review pages. The pages work without this script: every action
// is a plain form. Keys: a approve, c correct, r reject, n next item, j/k move in the queue,
// Enter open the selected row, Esc leave a field.
(function () {
  "use strict";

  function typing(target) {
    var tag = target && target.tagName;
    return tag === "INPUT" || tag === "TEXTAREA" || tag === "SELECT" || (target && target.isContentEditable);
  }

  function focusFirst(formId) {
    var form = document.getElementById(formId);
    if (!form) return false;
    var field = form.querySelector("select, input:not([type=hidden])");
    if (field) { field.focus(); return true; }
    return false;
  }

  function submit(formId) {
    var form = document.getElementById(formId);
    if (!form) return false;
    if (form.requestSubmit) { form.requestSubmit(); } else { form.submit(); }
    return true;
  }

  function rows() {
    var table = document.getElementById("queue");
    // An item waiting for another reviewer is shown, greyed, but j/k and Enter pass it by.
    return table ? Array.prototype.slice.call(table.querySelectorAll("tbody tr:not(.waiting)")) : [];
  }

  function move(step) {
    var all = rows();
    if (!all.length) return false;
    var current = all.findIndex(function (row) { return row.classList.contains("selected"); });
    var next = Math.min(all.length - 1, Math.max(0, current + step));
    if (current >= 0) all[current].classList.remove("selected");
    all[next].classList.add("selected");
    all[next].scrollIntoView({ block: "nearest" });
    return true;
  }

  function openSelected() {
    var row = document.querySelector("#queue tr.selected");
    if (!row) return false;
    window.location.href = row.getAttribute("data-href");
    return true;
  }

  document.addEventListener("click", function (event) {
    var row = event.target.closest && event.target.closest("#queue tbody tr");
    if (row && !event.target.closest("a, input, label")) window.location.href = row.getAttribute("data-href");
  });

  document.addEventListener("keydown", function (event) {
    if (event.key === "Escape" && typing(event.target)) { event.target.blur(); return; }
    if (event.ctrlKey || event.metaKey || event.altKey || typing(event.target)) return;
    var handled = false;
    switch (event.key) {
      case "a": handled = submit("approve-form"); break;
      case "c": handled = focusFirst("correct-form"); break;
      case "r": handled = focusFirst("reject-form"); break;
      case "n": {
        var next = document.getElementById("next-item");
        if (next) { window.location.href = next.getAttribute("href"); handled = true; }
        break;
      }
      case "j": handled = move(1); break;
      case "k": handled = move(-1); break;
      case "Enter": handled = openSelected(); break;
    }
    if (handled) event.preventDefault();
  });
})();
