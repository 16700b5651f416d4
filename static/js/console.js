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

// Live progress of running tasks on the campaign page: poll the JSON every few seconds.
(function () {
  const box = document.getElementById("running-tasks");
  if (!box) return;
  function render(tasks) {
    box.replaceChildren();
    if (!tasks.length) {
      const p = document.createElement("p");
      p.className = "muted";
      p.textContent = "Nothing running.";
      box.appendChild(p);
      return;
    }
    tasks.forEach(function (t) {
      const div = document.createElement("div");
      div.className = "task";
      const name = document.createElement("strong");
      name.textContent = t.name;
      const badge = document.createElement("span");
      badge.className = "badge " + t.state;
      badge.textContent = t.state;
      const msg = document.createElement("span");
      msg.className = "msg";
      msg.textContent = " " + t.key + " · " + t.message;
      const bar = document.createElement("progress");
      bar.className = "progress";
      bar.max = t.total || 1;
      bar.value = t.done;
      div.append(name, " ", badge, msg, bar);
      box.appendChild(div);
    });
  }
  function poll() {
    fetch(box.dataset.progressUrl, {credentials: "same-origin"})
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (j) { if (j) render(j.tasks); })
      .catch(function () {});
  }
  setInterval(poll, 4000);
})();

// A <select data-autosubmit> submits its form when changed (no inline handler: CSP).
document.querySelectorAll("select[data-autosubmit]").forEach(function (sel) {
  sel.addEventListener("change", function () { sel.form.submit(); });
});

// A character counter: <span data-count-for="FIELD_ID" data-max="N"> shows "(len / N)".
document.querySelectorAll("[data-count-for]").forEach(function (out) {
  const box = document.getElementById(out.dataset.countFor);
  if (!box) return;
  const tick = function () { out.textContent = "(" + box.value.length + " / " + out.dataset.max + ")"; };
  box.addEventListener("input", tick);
  tick();
});

// Gallery tiles: the note over a map stays until its image arrives (maps are drawn on first
// view, seconds each), and says so if it could not be drawn.
document.querySelectorAll("[data-tile]").forEach(function (tile) {
  const img = tile.querySelector("img");
  const note = tile.querySelector(".tile-note");
  const done = function () { tile.classList.remove("loading"); };
  if (img.complete && img.naturalWidth) { done(); return; }
  img.addEventListener("load", done);
  img.addEventListener("error", function () {
    tile.classList.remove("loading"); tile.classList.add("failed");
    note.textContent = "The attribution map could not be drawn.";
  });
});
