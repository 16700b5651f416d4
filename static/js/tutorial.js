// Tutorial: answer each example, read why, go on; the last step posts "done" and starts.
(function () {
  "use strict";
  const root = document.getElementById("tutorial");
  if (!root) return;
  const steps = Array.from(root.querySelectorAll(".tut-step"));
  let at = 0;
  // Translations: the djangojs catalogue (/i18n/js/, loaded before this file); English if absent.
  const _ = window.gettext || ((s) => s);

  function draw(step) {
    const holder = step.querySelector(".mini-spectrum");
    const data = step.querySelector("script[type='application/json']");
    if (!window.Plotly || !holder || !data || holder.dataset.drawn) return;
    const fig = JSON.parse(data.textContent);
    fig.layout.height = holder.clientHeight || 200;
    Plotly.newPlot(holder, fig.data, fig.layout, {responsive: true, displaylogo: false, displayModeBar: false});
    holder.dataset.drawn = "1";
  }

  function answer(step, value) {
    const explain = step.querySelector(".tut-explain");
    if (!explain.hidden) return;
    const real = step.dataset.real === "1";
    const right = (value === "yes") === real;
    const verdict = step.querySelector(".tut-verdict");
    verdict.textContent = right ? _("Right!") : real ? _("Not quite: this one is a real line.") : _("Not quite: this one is not a real line.");
    explain.classList.add(right ? "good" : "bad");
    explain.hidden = false;
    step.querySelectorAll(".tut-answers button").forEach((b) => (b.disabled = true));
    step.querySelector(".tut-next").focus();
  }

  function next() {
    const step = steps[at];
    const btn = step.querySelector(".tut-next");
    if (btn.type === "submit") { btn.form.requestSubmit ? btn.form.requestSubmit() : btn.form.submit(); return; }
    step.hidden = true;
    at += 1;
    steps[at].hidden = false;
    draw(steps[at]);
    steps[at].querySelector(".tut-answers .yes").focus();
  }

  steps.forEach((step) => {
    step.querySelectorAll(".tut-answers button").forEach((b) =>
      b.addEventListener("click", () => answer(step, b.dataset.answer)));
    const btn = step.querySelector(".tut-next");
    if (btn.type !== "submit") btn.addEventListener("click", next);
  });

  document.addEventListener("keydown", (e) => {
    if (e.altKey || e.ctrlKey || e.metaKey) return;
    const step = steps[at];
    if (!step) return;
    const open = !step.querySelector(".tut-explain").hidden;
    if (!open && (e.key === "ArrowRight" || e.key === "y" || e.key === "Y")) { e.preventDefault(); answer(step, "yes"); }
    else if (!open && (e.key === "ArrowLeft" || e.key === "n" || e.key === "N")) { e.preventDefault(); answer(step, "no"); }
    else if (open && e.key === "Enter" && document.activeElement !== step.querySelector(".tut-next")) { e.preventDefault(); next(); }
  });
  if (steps.length) draw(steps[0]);
})();
