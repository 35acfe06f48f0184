// yunpipe's dashboard: the little it does in the browser. Written for this page, nothing vendored.
"use strict";

// Colour each step of the graph (Graphviz names a node by its <title>) as its row of counts says.
function paintGraph() {
  var nodes = {};
  document.querySelectorAll("#graph svg g.node").forEach(function (node) {
    var title = node.querySelector("title");
    if (title) { nodes[title.textContent] = node; }
  });
  document.querySelectorAll("[data-step-state]").forEach(function (row) {
    var node = nodes[row.dataset.step];
    if (node) { node.setAttribute("class", "node state-" + row.dataset.stepState); }
  });
}

// A live part asks its URL again every few seconds and takes the HTML it gets: no reload.
function keepLive(part) {
  var every = Number(part.dataset.every || 2000);
  function refresh() {
    fetch(part.dataset.live, {credentials: "same-origin", headers: {"Accept": "text/html"}})
      .then(function (answer) {
        if (!answer.ok) { throw new Error(answer.status); }
        return answer.text();
      })
      .then(function (html) {
        part.innerHTML = html;
        part.classList.remove("stale");
        part.dataset.refreshed = String(Number(part.dataset.refreshed || 0) + 1);
        paintGraph();
      })
      .catch(function () { part.classList.add("stale"); })
      .finally(function () { setTimeout(refresh, every); });
  }
  setTimeout(refresh, every);
}

document.querySelectorAll("[data-live]").forEach(keepLive);
paintGraph();

document.addEventListener("click", function (event) {
  var button = event.target.closest("[data-copy]");
  if (!button) { return; }
  var text = document.getElementById(button.dataset.copy).textContent;
  navigator.clipboard.writeText(text).then(function () { button.textContent = "Copied"; });
});
