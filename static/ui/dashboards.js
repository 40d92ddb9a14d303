// Charts of the dashboards page. The figures arrive in parts (htmx); each chart is drawn once its
// json_script data is on the page. A click on a month drills down to the deals won that month.
(function () {
  "use strict";
  var script = document.getElementById("dash-script");
  var lang = document.documentElement.lang || "en";
  var fmt = new Intl.NumberFormat(lang, { maximumFractionDigits: 0 });
  var ticks = { callback: function (v) { return fmt.format(v); } };

  function data(id) { var el = document.getElementById(id); return el ? JSON.parse(el.textContent) : null; }

  function draw() {
    var gpCanvas = document.getElementById("chart-gp"), cacCanvas = document.getElementById("chart-cac");
    var gp = data("data-gp"), cac = data("data-cac");
    if (gp && gpCanvas && !gpCanvas.dataset.drawn) {
      gpCanvas.dataset.drawn = "1";
      new Chart(gpCanvas, {
        data: {
          labels: gp.labels,
          datasets: [
            { type: "bar", label: script.dataset.gpLabel, data: gp.gross_profit, yAxisID: "y", backgroundColor: "rgba(28,107,214,.6)" },
            { type: "line", label: script.dataset.marginLabel, data: gp.margin, yAxisID: "y1", borderColor: "#d97706", tension: .3 }
          ]
        },
        options: {
          animation: false, responsive: true,
          scales: { y: { ticks: ticks }, y1: { position: "right", grid: { drawOnChartArea: false } } },
          onClick: function (evt, elements) {
            if (elements.length) { window.location = script.dataset.dealsUrl + gp.drill[elements[0].index]; }
          }
        }
      });
    }
    if (cac && cacCanvas && !cacCanvas.dataset.drawn) {
      cacCanvas.dataset.drawn = "1";
      new Chart(cacCanvas, {
        type: "bar",
        data: { labels: cac.labels, datasets: [
          { label: "CAC", data: cac.cac, backgroundColor: "rgba(217,53,38,.6)" },
          { label: "LTV", data: cac.ltv, backgroundColor: "rgba(21,122,52,.6)" }
        ] },
        options: { animation: false, responsive: true, scales: { y: { ticks: ticks } } }
      });
    }
  }

  draw();
  document.body.addEventListener("htmx:afterSettle", draw);
})();
