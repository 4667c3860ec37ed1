// Keyboard shortcuts and double-submit protection for the rating form (served as a file: the CSP
// forbids inline script). The server validates everything again; this file is only convenience.
"use strict";
(function () {
  const form = document.querySelector("form.task");
  if (!form) return;
  let sent = false;
  form.addEventListener("submit", function (e) {
    if (sent) { e.preventDefault(); return; }
    sent = true;
    // disable after the browser has collected the clicked button's value
    setTimeout(function () { form.querySelectorAll("button").forEach(function (b) { b.disabled = true; }); }, 0);
  });
  const sets = Array.from(form.querySelectorAll("fieldset"));
  function current() { return sets.find(function (f) { return !f.querySelector("input:checked"); }); }
  function mark() { sets.forEach(function (f) { f.classList.toggle("current", f === current()); }); }
  form.addEventListener("change", mark);
  mark();
  document.addEventListener("keydown", function (e) {
    if (e.ctrlKey || e.metaKey || e.altKey || e.repeat) return;
    const tag = (e.target && e.target.tagName) || "";
    if (tag === "TEXTAREA" || tag === "INPUT" && e.target.type === "text") return;
    if (form.dataset.kind === "pair") {
      const b = form.querySelector('button[data-key="' + e.key + '"]');
      if (b) { e.preventDefault(); b.click(); }
      return;
    }
    if (e.key === "Enter") { e.preventDefault(); if (form.reportValidity()) form.requestSubmit(); return; }
    const f = current();
    if (!f) return;
    const input = f.querySelector('input[data-key="' + e.key + '"]');
    if (input) { e.preventDefault(); input.checked = true; mark(); }
  });
})();
