// riverguard console: keyboard shortcuts (progressive enhancement: every page works without).
// Item page: f / l / u give a verdict (the buttons carrying data-key), n or j goes to the next
// item, k goes back. Queue: j / k move the selection, Enter or o opens it, n opens the first.
(function () {
  "use strict";
  function typing(target) {
    var tag = target && target.tagName;
    return tag === "INPUT" || tag === "TEXTAREA" || tag === "SELECT" || (target && target.isContentEditable);
  }
  function rows() {
    var table = document.querySelector("[data-shortcuts=list] tbody");
    return table ? Array.prototype.slice.call(table.querySelectorAll("tr[data-href]")) : [];
  }
  var selected = -1;
  function select(index) {
    var all = rows();
    if (!all.length) { return; }
    selected = Math.max(0, Math.min(all.length - 1, index));
    all.forEach(function (row, i) { row.classList.toggle("selected", i === selected); });
    all[selected].scrollIntoView({ block: "nearest" });
  }
  function open(index) {
    var all = rows();
    if (all[index]) { window.location.assign(all[index].getAttribute("data-href")); }
  }
  function help() {
    var box = document.getElementById("shortcut-help");
    if (box) { box.remove(); return; }
    box = document.createElement("div");
    box.id = "shortcut-help";
    box.className = "help-box";
    box.textContent = "f fraud · l legitimate · u unsure · n / j next · k back (item) — c claim · i inconclusive (case) — j / k move · Enter or o open · n first (queue, cases) · ? this help";
    document.body.appendChild(box);
  }
  document.addEventListener("keydown", function (event) {
    if (event.ctrlKey || event.metaKey || event.altKey || typing(event.target)) { return; }
    var key = event.key;
    if (key === "?") { help(); event.preventDefault(); return; }
    var button = document.querySelector("button[data-key='" + key + "']");
    if (button && !button.disabled) {
      button.click();
      event.preventDefault();
      return;
    }
    var listed = rows().length > 0;
    if (listed) {
      if (key === "j") { select(selected + 1); }
      else if (key === "k") { select(selected - 1); }
      else if ((key === "Enter" || key === "o") && selected >= 0) { open(selected); }
      else if (key === "n") { open(0); }
      else { return; }
      event.preventDefault();
      return;
    }
    var next = document.querySelector("a[data-key=n]");
    if ((key === "n" || key === "j") && next) { window.location.assign(next.href); event.preventDefault(); }
    else if (key === "k" && document.getElementById("tx-id")) { window.history.back(); event.preventDefault(); }
  });
  // a verdict form goes once: a second key press while the first is in flight does nothing
  var form = document.getElementById("verdict-form");
  if (form) {
    form.addEventListener("submit", function () {
      window.setTimeout(function () {
        form.querySelectorAll("button").forEach(function (b) { b.disabled = true; });
      }, 0);
    });
  }
}());
