// Field guide: each entry's mini spectrum is drawn from the JSON next to it (json_script).
(function () {
  "use strict";
  document.querySelectorAll(".guide-entry").forEach(function (entry) {
    var data = entry.querySelector("script[type='application/json']");
    var holder = entry.querySelector(".mini-spectrum");
    if (!window.Plotly || !data) return;
    var fig = JSON.parse(data.textContent);
    fig.layout.height = holder.clientHeight;
    Plotly.newPlot(holder, fig.data, fig.layout, {responsive: true, displaylogo: false, displayModeBar: false, staticPlot: true});
  });
})();
