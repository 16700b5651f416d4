// Console plots: every <div data-plot="ID"> is drawn from the JSON in <script id="ID">
// (a plotly figure {data, layout} put there by the server with json_script).
(function () {
  if (!window.Plotly) return;
  document.querySelectorAll("[data-plot]").forEach(function (holder) {
    const src = document.getElementById(holder.dataset.plot);
    if (!src) return;
    const fig = JSON.parse(src.textContent);
    const layout = Object.assign({margin: {l: 55, r: 15, t: 35, b: 45}}, fig.layout || {});
    Plotly.newPlot(holder, fig.data, layout, {responsive: true, displaylogo: false});
  });
  // Confirmation for destructive or expensive actions: <form data-confirm="...">.
  document.querySelectorAll("form[data-confirm]").forEach(function (form) {
    form.addEventListener("submit", function (ev) {
      if (!window.confirm(form.dataset.confirm)) ev.preventDefault();
    });
  });
})();
