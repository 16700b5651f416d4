// The expert queue: one key answers, the next candidate is already loaded (image + spectrum)
// and appears without a page reload. Each answer's response carries more candidates so the
// local queue never runs dry; "skip" only moves on locally (nothing is recorded).
(function () {
  "use strict";
  const root = document.getElementById("expert");
  if (!root) return;
  const cfg = JSON.parse(document.getElementById("expert-config").textContent);
  const $ = (id) => document.getElementById(id);
  const img = $("expert-cutout"), spectrumEl = $("expert-spectrum"), statusEl = $("expert-status");
  const stage = $("expert-stage"), empty = $("expert-empty"), answersEl = $("expert-answers");

  let queue = cfg.candidates.slice();  // candidates not yet answered, next first
  let current = null;
  let remaining = cfg.remaining;       // in the expert queue on the server
  let done = 0, skipped = [];          // this visit
  let busy = false, shownAt = 0;

  function say(text, isError) {
    statusEl.textContent = text;
    statusEl.classList.toggle("error", !!isError);
  }

  function fmt(x, digits) { return x === null || x === undefined ? "–" : Number(x).toFixed(digits); }

  function updateCount() {
    $("expert-left").textContent = `${remaining} left`;
    const parts = [];
    if (done) parts.push(`${done} answered`);
    if (skipped.length) parts.push(`${skipped.length} skipped`);
    $("expert-done").textContent = parts.join(" · ");
  }

  function preload(c) {
    if (!c || c._img) return;
    c._img = new Image();
    c._img.decoding = "async";
    c._img.src = c.cutout_url;
    c._spec = fetch(c.spectrum_url, {credentials: "same-origin"})
      .then((r) => (r.ok ? r.json() : null)).catch(() => null);
  }

  function drawSpectrum(c) {
    if (!window.Plotly) return;
    c._spec.then((fig) => {
      if (!fig || current !== c) return;
      const layout = Object.assign({}, fig.layout, {
        height: spectrumEl.clientHeight || 220, showlegend: false, autosize: true,
        margin: {l: 48, r: 8, t: 6, b: 36},
      });
      Plotly.react(spectrumEl, fig.data, layout, {responsive: true, displaylogo: false});
    });
  }

  function show(c) {
    current = c;
    if (!c) {
      stage.hidden = true;
      empty.hidden = false;
      root.dataset.detectid = "";
      if (skipped.length) {
        empty.querySelector("p").textContent =
          `Nothing more to answer on this visit: you skipped ${skipped.length}. ` +
          "Reload the page to see the skipped ones again.";
      }
      return;
    }
    stage.hidden = false;
    empty.hidden = true;
    preload(c);
    img.src = c.cutout_url;
    img.alt = `Candidate ${c.detectid} at ${c.wave} Å: 2D cutouts (fiber sum on top, the 4 ` +
      "closest fibers below), line position marked";
    const link = $("expert-detectid");
    link.textContent = c.detectid;
    link.href = c.candidate_url;
    $("f-wave").textContent = `${fmt(c.wave, 1)} Å`;
    $("f-z").textContent = fmt(c.z_lya, 3);
    $("f-sn").textContent = fmt(c.sn, 2);
    $("f-flux").textContent = `${fmt(c.flux, 2)} ×10⁻¹⁷`;
    $("f-width").textContent = `${fmt(c.linewidth, 2)} Å`;
    $("f-field").textContent = c.field;
    $("f-posterior").textContent = fmt(c.posterior, 3);
    $("f-votes").textContent = `${c.votes.yes} yes · ${c.votes.no} no · ${c.votes.unsure} not sure`;
    $("f-model").textContent = c.model_prob === null ? "no live model score"
      : `${fmt(c.model_prob, 3)} (model v${c.model_version})`;
    $("f-why").textContent = c.entered_why;
    $("f-since").textContent = c.entered_at ? new Date(c.entered_at).toLocaleString() : "–";
    root.dataset.detectid = String(c.detectid);
    drawSpectrum(c);
    shownAt = performance.now();
    queue.slice(0, cfg.preload).forEach(preload);
  }

  function held() {
    return queue.map((c) => c.detectid).concat(current ? [current.detectid] : [], skipped);
  }

  function addFresh(list) {
    const have = new Set(held());
    (list || []).forEach((c) => { if (!have.has(c.detectid)) { queue.push(c); have.add(c.detectid); } });
  }

  async function post(body, tries = 3) {
    for (let attempt = 1; ; attempt++) {
      try {
        const resp = await fetch(cfg.answer_url, {
          method: "POST", credentials: "same-origin",
          headers: {"Content-Type": "application/json", "X-CSRFToken": cfg.csrf},
          body: JSON.stringify(body),
        });
        let data = {};
        try { data = await resp.json(); } catch (e) { data = {}; }
        return {status: resp.status, ok: resp.ok, data: data};
      } catch (err) {  // network: retry (a repeated answer is harmless on the server)
        if (attempt >= tries) throw err;
        await new Promise((r) => setTimeout(r, 300 * attempt));
      }
    }
  }

  function advance() {
    show(queue.shift() || null);
    updateCount();
  }

  async function answer(value) {
    if (busy || !current) return;
    const c = current;
    if (value === "skip") {
      skipped.push(c.detectid);
      say(`Skipped ${c.detectid}; it stays in the queue.`);
      advance();
      if (queue.length < cfg.preload) refill();
      return;
    }
    busy = true;
    root.classList.add("busy");
    let r;
    try {
      r = await post({
        detectid: c.detectid, answer: value,
        response_ms: Math.round(performance.now() - shownAt),
        exclude: held().filter((d) => d !== c.detectid),
        next: Math.max(0, cfg.preload + 1 - queue.length),
      });
    } catch (err) {
      say("No connection: the answer was not sent. Press the key again.", true);
      return;
    } finally {
      busy = false;
      root.classList.remove("busy");
    }
    if (r.ok) {
      if (r.data.created) done += 1;
      remaining = r.data.remaining;
      addFresh(r.data.next);
      say(`${c.detectid}: ${value === "yes" ? "real line" : "not real"}, saved.`);
      advance();
      if (!current && remaining > 0) refill();
    } else if (r.status === 409) {
      say((r.data.error && r.data.error.message) || "Already settled; moved on.", true);
      advance();
      refill();
    } else {
      say((r.data.error && r.data.error.message) || `Something went wrong (${r.status}).`, true);
    }
  }

  // More candidates without answering (after skips or a 409): the queue page's JSON form.
  let refilling = false;
  async function refill() {
    if (refilling) return;
    refilling = true;
    try {
      const want = Math.max(1, cfg.preload + 1 - queue.length);
      const ex = held().join(",");
      const resp = await fetch(`${cfg.queue_url}?format=json&count=${want}&exclude=${ex}`,
                               {credentials: "same-origin"});
      if (resp.ok) {
        const data = await resp.json();
        remaining = data.remaining;
        addFresh(data.candidates);
        queue.slice(0, cfg.preload).forEach(preload);
        if (!current && queue.length) show(queue.shift());
      }
    } catch (err) {
      // offline: the next answer's response refills the queue
    } finally {
      refilling = false;
      updateCount();
    }
  }

  answersEl.addEventListener("click", (e) => {
    const b = e.target.closest("button[data-answer]");
    if (b) answer(b.dataset.answer);
  });

  document.addEventListener("keydown", (e) => {
    if (e.altKey || e.ctrlKey || e.metaKey) return;
    const t = e.target;
    if (t && (t.tagName === "INPUT" || t.tagName === "TEXTAREA" || t.isContentEditable)) return;
    const k = e.key;
    let handled = true;
    if (k === "y" || k === "Y" || k === "ArrowRight") answer("yes");
    else if (k === "n" || k === "N" || k === "ArrowLeft") answer("no");
    else if (k === "s" || k === "S" || k === "ArrowDown") answer("skip");
    else handled = false;
    if (handled) e.preventDefault();
  });

  show(queue.shift() || null);
  updateCount();
})();
