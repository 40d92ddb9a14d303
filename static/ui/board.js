// Drag-and-drop on the deal board. The move is posted like the keyboard form in each card, with the
// deal's updated_at as drawn, so the server can refuse a stale move; the board comes back redrawn.
(function () {
  "use strict";
  var dragged = null;
  document.addEventListener("dragstart", function (e) {
    var card = e.target.closest && e.target.closest(".card");
    if (!card) return;
    dragged = card;
    e.dataTransfer.effectAllowed = "move";
    e.dataTransfer.setData("text/plain", card.dataset.deal);
  });
  document.addEventListener("dragend", function () { dragged = null; });
  document.addEventListener("dragover", function (e) {
    var col = e.target.closest && e.target.closest(".column");
    if (!col || !dragged) return;
    e.preventDefault();
    document.querySelectorAll(".column.over").forEach(function (c) { if (c !== col) c.classList.remove("over"); });
    col.classList.add("over");
  });
  document.addEventListener("dragleave", function (e) {
    var col = e.target.closest && e.target.closest(".column");
    if (col && !col.contains(e.relatedTarget)) col.classList.remove("over");
  });
  document.addEventListener("drop", function (e) {
    var col = e.target.closest && e.target.closest(".column");
    if (!col || !dragged) return;
    e.preventDefault();
    col.classList.remove("over");
    if (dragged.closest(".column") === col) return;
    var token = dragged.querySelector("input[name=csrfmiddlewaretoken]");
    htmx.ajax("POST", dragged.dataset.url, {
      source: dragged,
      target: "#board",
      values: {
        stage: col.dataset.stage,
        updated_at: dragged.dataset.updated,
        csrfmiddlewaretoken: token ? token.value : ""
      }
    });
  });
})();
