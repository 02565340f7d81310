// Rule editor: line numbers beside the document, kept aligned while scrolling and typing; the
// lines the last check found problems on are marked, and a click on a problem in the report
// moves the caret to its line and column. Without this script the editor is a plain textarea.
(function () {
  "use strict";
  var area = document.getElementById("document");
  if (!area) { return; }
  var gutter = document.createElement("div");
  gutter.className = "gutter";
  gutter.setAttribute("aria-hidden", "true");
  area.parentNode.insertBefore(gutter, area);
  area.classList.add("numbered");
  var marked = {};
  (area.getAttribute("data-problem-lines") || "").split(" ").forEach(function (n) {
    if (n) { marked[n] = true; }
  });
  var shown = 0;

  function lineCount() { return area.value.split("\n").length; }

  // One number per line of the text (rebuilt only when the count changes).
  function number() {
    var count = lineCount();
    if (count === shown) { return; }
    var lines = document.createDocumentFragment();
    for (var i = 1; i <= count; i++) {
      var n = document.createElement("span");
      n.textContent = String(i);
      n.id = "line-" + i;
      if (marked[i]) { n.className = "problem"; }
      lines.appendChild(n);
    }
    gutter.textContent = "";
    gutter.appendChild(lines);
    shown = count;
    follow();
  }

  function follow() { gutter.scrollTop = area.scrollTop; }

  // Puts the caret at `line`, `column` (1-based) and scrolls the line into view.
  function goTo(line, column) {
    var lines = area.value.split("\n");
    line = Math.max(1, Math.min(line, lines.length));
    var at = 0;
    for (var i = 0; i < line - 1; i++) { at += lines[i].length + 1; }
    at += Math.max(0, Math.min(column - 1, lines[line - 1].length));
    area.focus();
    area.setSelectionRange(at, at);
    var height = parseFloat(window.getComputedStyle(area).lineHeight) || 18;
    area.scrollTop = Math.max(0, (line - 1) * height - area.clientHeight / 3);
    follow();
  }

  area.addEventListener("input", number);
  area.addEventListener("scroll", follow);
  window.addEventListener("resize", follow);
  document.querySelectorAll("#report a.goto").forEach(function (link) {
    link.addEventListener("click", function (e) {
      e.preventDefault();
      goTo(parseInt(link.getAttribute("data-line"), 10) || 1,
           parseInt(link.getAttribute("data-column"), 10) || 1);
    });
  });
  number();
})();
