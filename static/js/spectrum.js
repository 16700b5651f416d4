// Draws the 1D spectrum figure that the server put in <script id="spectrum-data">.
(function () {
  const holder = document.getElementById("spectrum");
  const data = document.getElementById("spectrum-data");
  if (!holder || !data || !window.Plotly) return;
  const fig = JSON.parse(data.textContent);
  Plotly.newPlot(holder, fig.data, fig.layout, {responsive: true, displaylogo: false});
})();
