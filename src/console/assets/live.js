// Live view: appends offers and alerts pushed by the console (server-sent events) to the table,
// with the page's filters, and redraws the decisions chart (same filters) and the inbound
// channels' table every few seconds.
// Rows and the chart arrive as HTML/SVG the server rendered and escaped.
(function () {
  "use strict";
  var table = document.querySelector("#live tbody");
  var status = document.getElementById("status");
  var KEEP = 500;
  var source = new EventSource("/live/stream" + window.location.search);
  source.addEventListener("open", function () { status.textContent = "live"; });
  source.addEventListener("error", function () { status.textContent = "reconnecting…"; });
  source.addEventListener("lagged", function (e) {
    status.textContent = "live (" + e.data + " rows skipped while this page was slow)";
  });
  source.addEventListener("row", function (e) {
    var row = JSON.parse(e.data);
    var body = document.createElement("tbody");
    body.innerHTML = row.html;
    var tr = body.firstElementChild;
    if (!tr) { return; }
    tr.classList.add("new");
    table.insertBefore(tr, table.firstChild);
    setTimeout(function () { tr.classList.remove("new"); }, 2000);
    while (table.rows.length > KEEP) { table.deleteRow(table.rows.length - 1); }
  });
  var chart = document.getElementById("chart");
  var CHART_EVERY_MS = 10000;
  function redraw() {
    fetch("/live/chart" + window.location.search, { credentials: "same-origin" })
      .then(function (r) { return r.ok ? r.text() : null; })
      .then(function (svg) {
        if (svg && svg.indexOf("<svg") === 0) { chart.innerHTML = svg; }
      })
      .catch(function () { /* the next redraw tries again */ });
  }
  if (chart) { setInterval(redraw, CHART_EVERY_MS); }
  // The inbound channels' table, when the console reads API instances.
  var channels = document.getElementById("channels");
  function reread() {
    fetch("/live/channels", { credentials: "same-origin" })
      // A redirect (the session ended) answers the sign-in page: never put in the table.
      .then(function (r) { return r.ok && !r.redirected ? r.text() : null; })
      .then(function (html) {
        if (html && (html.indexOf("<p") === 0 || html.indexOf("<table") === 0)) {
          channels.innerHTML = html;
        }
      })
      .catch(function () { /* the next reading tries again */ });
  }
  if (channels) { setInterval(reread, CHART_EVERY_MS); }
})();
