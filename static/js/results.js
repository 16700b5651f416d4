// Results page plots: every <div data-plot="ID"> is drawn from the JSON in <script id="ID">
// (a plotly figure put there by the server with json_script; no inline script: CSP).
(function () {
  if (!window.Plotly) return;
  const narrow = window.matchMedia("(max-width: 600px)").matches;
  document.querySelectorAll("[data-plot]").forEach(function (holder) {
    const src = document.getElementById(holder.dataset.plot);
    if (!src) return;
    const fig = JSON.parse(src.textContent);
    const layout = Object.assign({margin: {l: 55, r: 15, t: 45, b: 45}}, fig.layout || {});
    if (narrow) {
      // a phone: a smaller title that wraps inside the plot, and room for the legend
      layout.margin = {l: 50, r: 8, t: 60, b: 40};
      if (layout.title && layout.title.text) {
        layout.title = Object.assign({}, layout.title, {
          font: {size: 13},
          text: layout.title.text.replace(/^(.{20,34}?) /, "$1<br>"),
        });
      }
    }
    Plotly.newPlot(holder, fig.data, layout, {
      responsive: true, displaylogo: false, displayModeBar: false,
    });
  });
})();
