// yunpipe's dashboard: the little it does in the browser. Written for this page, nothing vendored.
"use strict";

var SVG = "http://www.w3.org/2000/svg";
var SHOWN = [["waiting", "waiting"], ["in_flight", "in flight"], ["done", "done"], ["dead", "dead"],
             ["running", "running"]];

// A step's counts in words, the ones that are not zero ("4 done · 1 dead").
function countsOf(row) {
  var parts = [];
  SHOWN.forEach(function (pair) {
    var cell = row.querySelector('[data-count="' + pair[0] + '"]');
    if (cell && cell.textContent.trim() !== "0") { parts.push(cell.textContent.trim() + " " + pair[1]); }
  });
  return parts.join(" \u00b7 ") || "idle";
}

// Colour each step of the graph (Graphviz names a node by its <title>) as its row of counts
// says, and write those counts under it.
function paintGraph() {
  var nodes = {};
  document.querySelectorAll("#graph svg g.node").forEach(function (node) {
    var title = node.querySelector("title");
    if (title) { nodes[title.textContent] = node; }
  });
  document.querySelectorAll("[data-step-state]").forEach(function (row) {
    var node = nodes[row.dataset.step];
    var shape = node && node.querySelector("ellipse");
    if (!shape) { return; }
    node.setAttribute("class", "node state-" + row.dataset.stepState);
    var text = node.querySelector("text.counts");
    if (!text) {
      text = document.createElementNS(SVG, "text");
      text.setAttribute("class", "counts");
      text.setAttribute("text-anchor", "middle");
      text.setAttribute("x", shape.getAttribute("cx"));
      text.setAttribute("y", Number(shape.getAttribute("cy")) + Number(shape.getAttribute("ry")) + 11);
      node.appendChild(text);
    }
    text.textContent = countsOf(row);
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
