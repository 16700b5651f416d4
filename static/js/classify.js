// The classify page: one candidate at a time, answered by tap, key or swipe.
// Talks to the JSON API (/api/openapi.json). The next candidate is always preloaded (image +
// spectrum), and each answer's response carries the one after it, so an answer costs one
// round trip and the picture changes without a layout jump (the boxes have fixed sizes).
(function () {
  "use strict";
  const root = document.getElementById("classify");
  if (!root) return;
  const cfg = JSON.parse(document.getElementById("classify-config").textContent);
  const $ = (id) => document.getElementById(id);
  const img = $("cutout"), box = $("cutout-box"), stage = $("stage"), spectrumEl = $("spectrum");
  const answersEl = $("answers"), feedbackEl = $("feedback"), reasonsEl = $("reasons");
  const undoBtn = $("undo"), undoLeft = $("undo-left"), statusEl = $("status"), countEl = $("count");
  const reducedMotion = window.matchMedia("(prefers-reduced-motion: reduce)").matches;
  // Translations: the djangojs catalogue (/i18n/js/, loaded before this file); English if absent.
  const _ = window.gettext || ((s) => s);
  const ngettext = window.ngettext || ((one, many, n) => (n === 1 ? one : many));
  const fmt = (s, named) => s.replace(/%\((\w+)\)s/g, (m, k) => String(named[k]));

  let current = null;        // candidate on screen
  let queue = [];            // preloaded candidates, next first
  let shownAt = 0;           // when `current` appeared (response time)
  let busy = false;          // an answer is on its way
  let feedbackOpen = false;  // gold feedback waiting for "Continue"
  let lastVote = null;       // {cand, answer, until}
  let reasonFor = null;      // detectid the reason chips apply to
  let undoTimer = null;
  let lastPointer = "mouse";

  function csrfToken() {
    const m = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
    return m ? decodeURIComponent(m[1]) : "";
  }

  // fetch JSON; network errors are retried (the server makes repeats harmless).
  async function api(url, body, tries = 3) {
    const opts = body === undefined ? {credentials: "same-origin"} : {
      method: "POST", credentials: "same-origin",
      headers: {"Content-Type": "application/json", "X-CSRFToken": csrfToken()},
      body: JSON.stringify(body),
    };
    for (let attempt = 1; ; attempt++) {
      try {
        const resp = await fetch(url, opts);
        let data = null;
        try { data = await resp.json(); } catch (e) { data = null; }
        return {status: resp.status, ok: resp.ok, data: data || {}};
      } catch (err) {
        if (attempt >= tries) throw err;
        await new Promise((r) => setTimeout(r, 300 * attempt));
      }
    }
  }

  function say(text) { statusEl.textContent = text; }

  // --- picture view: contrast stretch and colour map, remembered in this browser ----
  // The server renders each view (cutout URL ?stretch=&cmap=, cached on disk); the default
  // view keeps the plain URL, so it shares the cache every other page uses.
  const VIEW_KEY = "dex.cutoutView";
  const DEFAULT_VIEW = {stretch: "linear", cmap: "viridis"};
  const stretchSel = $("view-stretch"), cmapSel = $("view-cmap");
  const allowed = (sel) => Array.from(sel.options).map((o) => o.value);
  function loadView() {
    let v = {};
    try { v = JSON.parse(window.localStorage.getItem(VIEW_KEY) || "{}") || {}; } catch (e) { v = {}; }
    return {
      stretch: allowed(stretchSel).includes(v.stretch) ? v.stretch : DEFAULT_VIEW.stretch,
      cmap: allowed(cmapSel).includes(v.cmap) ? v.cmap : DEFAULT_VIEW.cmap,
    };
  }
  let view = loadView();
  stretchSel.value = view.stretch;
  cmapSel.value = view.cmap;
  function cutoutUrl(c) {
    if (view.stretch === DEFAULT_VIEW.stretch && view.cmap === DEFAULT_VIEW.cmap) return c.cutout_url;
    const q = new URLSearchParams({stretch: view.stretch, cmap: view.cmap});
    return c.cutout_url + (c.cutout_url.includes("?") ? "&" : "?") + q.toString();
  }
  function setView() {
    view = {stretch: stretchSel.value, cmap: cmapSel.value};
    try { window.localStorage.setItem(VIEW_KEY, JSON.stringify(view)); } catch (e) { /* private mode */ }
    queue.forEach((c) => { c._img = null; });
    if (current) {
      img.src = cutoutUrl(current);
      if (queue[0]) preload(queue[0]);
    }
    root.dataset.view = `${view.stretch} ${view.cmap}`;
  }
  root.dataset.view = `${view.stretch} ${view.cmap}`;
  stretchSel.addEventListener("change", setView);
  cmapSel.addEventListener("change", setView);
  const viewToggle = $("view-toggle"), toolsEl = $("image-tools");
  function toggleTools(open) {
    const on = open === undefined ? toolsEl.hidden : open;
    toolsEl.hidden = !on;
    viewToggle.setAttribute("aria-expanded", on ? "true" : "false");
    if (on) stretchSel.focus({preventScroll: true});
  }
  viewToggle.addEventListener("click", () => toggleTools());

  // --- field guide drawer: beside the picture (a bottom sheet on narrow screens) ------
  const drawer = $("guide-drawer"), guideOpen = $("guide-open"), guideBody = $("guide-drawer-body");
  let guideLoaded = false, drawerOpener = null;
  async function loadGuide() {
    if (guideLoaded) return;
    try {
      const resp = await fetch(drawer.dataset.src, {credentials: "same-origin"});
      if (!resp.ok) throw new Error(String(resp.status));
      // the site's own template, parsed inert (scripts in a parsed document never run) and
      // moved in: no HTML string is ever assigned on this page (gold feedback stays text)
      const doc = new DOMParser().parseFromString(await resp.text(), "text/html");
      guideBody.replaceChildren(...doc.body.childNodes);
      guideLoaded = true;
    } catch (err) {
      guideBody.textContent = _("The field guide could not be loaded: check the connection and open it again.");
    }
  }
  function openDrawer() {
    drawerOpener = document.activeElement;
    drawer.hidden = false;
    document.body.classList.add("drawer-open");
    guideOpen.setAttribute("aria-expanded", "true");
    drawer.focus({preventScroll: true});
    loadGuide();
  }
  function closeDrawer() {
    if (drawer.hidden) return;
    drawer.hidden = true;
    document.body.classList.remove("drawer-open");
    guideOpen.setAttribute("aria-expanded", "false");
    const back = drawerOpener && document.contains(drawerOpener) ? drawerOpener : guideOpen;
    back.focus({preventScroll: true});
  }
  guideOpen.addEventListener("click", () => (drawer.hidden ? openDrawer() : closeDrawer()));
  $("guide-close").addEventListener("click", closeDrawer);

  function preload(c) {
    if (c._img) return c;
    c._img = new Image();
    c._img.decoding = "async";
    c._img.src = cutoutUrl(c);
    c._spec = fetch(c.spectrum_url, {credentials: "same-origin"})
      .then((r) => (r.ok ? r.json() : null)).catch(() => null);
    return c;
  }

  function drawSpectrum(c) {
    if (!window.Plotly) return;
    c._spec.then((fig) => {
      if (!fig || current !== c) return;
      const layout = Object.assign({}, fig.layout, {
        height: spectrumEl.clientHeight || 190, showlegend: false,
        margin: {l: 44, r: 8, t: 6, b: 34}, autosize: true,
      });
      layout.yaxis = {title: {text: _("flux")}, fixedrange: true};
      layout.xaxis = Object.assign({}, layout.xaxis, {fixedrange: true, title: {text: _("wavelength (Å)")}});
      Plotly.react(spectrumEl, fig.data, layout,
                   {responsive: true, displaylogo: false, staticPlot: false, displayModeBar: false});
    });
  }

  function show(c) {
    current = c;
    resetSwipe();
    setZoom(false);
    if (!c) {
      $("empty").hidden = false;
      stage.hidden = true;
      answersEl.querySelectorAll("button").forEach((b) => (b.disabled = true));
      return;
    }
    $("empty").hidden = true;
    stage.hidden = false;
    // After reading gold feedback lower down on a phone, bring the picture back into view.
    if (stage.getBoundingClientRect().top < 0) window.scrollTo(0, 0);
    answersEl.querySelectorAll("button").forEach((b) => (b.disabled = false));
    preload(c);
    img.src = cutoutUrl(c);
    img.alt = fmt(_("Candidate %(detectid)s at %(wave)s Å: 2D cutouts, the sum of the fibers on top " +
      "and the 4 closest fibers below, white marks at the line position"), c);
    root.dataset.detectid = c.detectid;
    showFavourite(c);
    drawSpectrum(c);
    shownAt = performance.now();
    if (queue[0]) preload(queue[0]);
  }

  function held() { return queue.map((c) => c.detectid).concat(current ? [current.detectid] : []); }

  async function fill() {
    const need = 2 - queue.length;
    if (need <= 0) return;
    const ex = held().join(",");
    const r = await api(`${cfg.next}?count=${need}&exclude=${ex}`);
    if (r.ok) {
      queue = queue.concat(r.data.candidates.filter((c) => !held().includes(c.detectid)));
      updateCount(r.data.volunteer);
    }
  }

  function updateCount(v) {
    if (v && typeof v.n_votes === "number") countEl.textContent = fmt(ngettext("%(n)s classified", "%(n)s classified", v.n_votes), {n: v.n_votes});
  }

  async function answer(value, client) {
    if (busy || feedbackOpen || !current) return;
    busy = true;
    root.classList.add("busy");
    const c = current;
    const body = {
      detectid: c.detectid, token: c.token, answer: value, client: client,
      response_ms: Math.round(performance.now() - shownAt),
      exclude: queue.map((q) => q.detectid),
      next: queue.length >= 2 ? 0 : 2 - queue.length,
    };
    let r;
    try {
      r = await api(cfg.vote, body);
    } catch (err) {
      busy = false;
      root.classList.remove("busy");
      say(_("No connection: your answer was not sent. Try again."));
      return;
    }
    busy = false;
    root.classList.remove("busy");
    if (r.status === 429) {
      say(fmt(_("Slow down a little: %(why)s"), {why: r.data.error.message}));
      return;
    }
    if (!r.ok && r.status !== 404 && r.status !== 409) {
      say((r.data.error && r.data.error.message) || fmt(_("Something went wrong (%(status)s)."), r));
      return;
    }
    if (r.ok) {
      updateCount(r.data.volunteer);
      if (r.data.level_change) showLevelChange(r.data.level_change);
      const fresh = (r.data.next || []).filter((n) => !held().includes(n.detectid));
      queue = queue.concat(fresh);
      lastVote = {cand: c, answer: value};
      talkLinks(c);
      startUndo();
      const fb = r.data.feedback;
      if (fb) {
        stopUndo();  // a teaching example's answer is final once explained
        hideReasons();
        openFeedback(fb, value);
        return; // stay on the gold candidate so the explanation can be read against it
      }
      if (value === "no") showReasons(c.detectid); else hideReasons();
      say(value === "yes" ? _("Saved: yes.") : value === "no" ? _("Saved: no.") : _("Saved: not sure."));
    } else {
      say(_("That candidate was just finished by others; here is the next one."));
    }
    advance();
  }

  async function advance() {
    const next = queue.shift() || null;
    if (!next) {
      await fill();
      show(queue.shift() || null);
    } else {
      show(next);
    }
    if (queue.length < 1) fill();
  }

  // A promotion (or a step back) after a gold answer: said in the feedback that explains the
  // answer (read out with it: the feedback is a live region), with a link to the rules.
  const levelBanner = $("level-banner");
  function showLevelChange(change) {
    $("level-message").textContent = change.message;
    levelBanner.classList.toggle("promoted", !!change.promoted);
    levelBanner.hidden = false;
  }

  // Talk: the answered candidate's discussion (it opens to a volunteer once they answered).
  function talkLinks(c) {
    if (!cfg.talk) return;
    const url = cfg.talk.replace(/\/0\/$/, `/${c.detectid}/`);
    const last = $("talk-last"), fbLink = $("feedback-talk");
    if (last) { last.href = url; last.hidden = false; }
    if (fbLink) fbLink.href = url;
  }

  function openFeedback(fb, value) {
    feedbackOpen = true;
    say("");
    const verdict = $("feedback-verdict");
    if (fb.correct) verdict.textContent = fb.is_real ? _("Right! This is a real line.") : _("Right! This is not a real line.");
    else verdict.textContent = fb.is_real ? _("Not quite: this one is a real line.") : _("Not quite: this one is not a real line.");
    verdict.className = "verdict " + (fb.correct ? "good" : "bad");
    $("feedback-text").textContent = fb.text;
    answersEl.hidden = true;
    feedbackEl.hidden = false;
    $("feedback-continue").focus({preventScroll: true});
    keepPictureInView();
  }

  // Bring the feedback into view without pushing the picture it explains off the screen:
  // scroll down only as far as the feedback needs, and never past the picture's top
  // (scroll up to it where it is already above the screen).
  function keepPictureInView() {
    const margin = 6;
    const boxTop = box.getBoundingClientRect().top;
    const overflow = feedbackEl.getBoundingClientRect().bottom + margin - window.innerHeight;
    const delta = Math.min(Math.max(overflow, 0), boxTop - margin);
    if (Math.abs(delta) >= 1) window.scrollBy({top: delta, behavior: "instant"});
  }

  function closeFeedback() {
    if (!feedbackOpen) return;
    feedbackOpen = false;
    feedbackEl.hidden = true;
    levelBanner.hidden = true;
    answersEl.hidden = false;
    advance();
  }

  function showReasons(detectid) {
    reasonFor = detectid;
    reasonsEl.querySelectorAll(".chip").forEach((b) => b.classList.remove("chosen"));
    reasonsEl.hidden = false;
  }
  function hideReasons() { reasonFor = null; reasonsEl.hidden = true; }

  async function giveReason(reason) {
    if (reasonFor === null) return;
    const detectid = reasonFor;
    reasonsEl.querySelectorAll(".chip").forEach((b) =>
      b.classList.toggle("chosen", b.dataset.reason === reason));
    const r = await api(cfg.reason, {detectid: detectid, reason: reason});
    if (r.ok) {
      const label = reasonsEl.querySelector(`[data-reason="${reason}"]`).firstChild.textContent.trim();
      say(fmt(_("Noted: %(reason)s."), {reason: label}));
      setTimeout(() => { if (reasonFor === detectid) hideReasons(); }, 600);
    }
  }

  function startUndo() {
    lastVote.until = Date.now() + cfg.undo_s * 1000;
    undoBtn.hidden = false;
    clearInterval(undoTimer);
    const tick = () => {
      const left = Math.ceil((lastVote.until - Date.now()) / 1000);
      if (left <= 0) { stopUndo(); return; }
      undoLeft.textContent = `(${left} s)`;
    };
    tick();
    undoTimer = setInterval(tick, 250);
  }
  function stopUndo() { clearInterval(undoTimer); undoBtn.hidden = true; lastVote = null; }

  async function undo() {
    if (!lastVote || busy) return;
    const v = lastVote;
    stopUndo();
    busy = true;
    const r = await api(cfg.undo, {}).catch(() => ({ok: false, data: {}}));
    busy = false;
    if (!r.ok) { say((r.data.error && r.data.error.message) || _("Could not undo.")); return; }
    updateCount(r.data.volunteer);
    hideReasons();
    if (feedbackOpen) { feedbackOpen = false; feedbackEl.hidden = true; answersEl.hidden = false; }
    if (current && current !== v.cand) queue.unshift(current);
    show(v.cand);
    say(fmt(_("Answer taken back: candidate %(detectid)s is back."), v.cand));
    if ($("talk-last")) $("talk-last").hidden = true;
  }

  // --- favourite ------------------------------------------------------------------
  // One tap toggles; the request says the state wanted (idempotent), the answer the state
  // kept. Only signed-in volunteers have the button.
  const favBtn = $("fav");
  const favourites = new Set();  // detectids made favourites on this page
  function showFavourite(c) {
    if (!favBtn) return;
    const on = !!c && favourites.has(c.detectid);
    favBtn.setAttribute("aria-pressed", on ? "true" : "false");
    $("fav-icon").textContent = on ? "♥" : "♡";
    favBtn.disabled = !c;
  }
  async function toggleFavourite() {
    if (!favBtn || !current) return;
    const c = current;
    const want = favBtn.getAttribute("aria-pressed") !== "true";
    const body = new URLSearchParams({detectid: String(c.detectid), favourite: want ? "1" : "0"});
    let r;
    try {
      const resp = await fetch(cfg.favourite, {
        method: "POST", credentials: "same-origin", body: body,
        headers: {"Accept": "application/json", "X-CSRFToken": csrfToken()},
      });
      r = {ok: resp.ok, data: await resp.json().catch(() => ({}))};
    } catch (err) {
      say(_("No connection: the favourite was not saved."));
      return;
    }
    if (!r.ok) { say((r.data.error && r.data.error.message) || _("Could not save the favourite.")); return; }
    if (r.data.favourite) favourites.add(c.detectid); else favourites.delete(c.detectid);
    if (current === c) showFavourite(c);
    say(r.data.favourite ? _("Saved in your favourites.") : _("Removed from your favourites."));
  }
  if (favBtn) favBtn.addEventListener("click", toggleFavourite);

  // --- zoom -----------------------------------------------------------------------
  function setZoom(on) {
    box.classList.toggle("zoomed", on);
    if (on) box.scrollLeft = (box.scrollWidth - box.clientWidth) / 2;
  }
  box.addEventListener("click", () => { if (!swipe.moved) setZoom(!box.classList.contains("zoomed")); });

  // --- swipe (touch) --------------------------------------------------------------
  const swipe = {id: null, x0: 0, y0: 0, dx: 0, moved: false};
  function resetSwipe() {
    swipe.id = null; swipe.dx = 0;
    stage.style.transform = "";
    stage.classList.remove("swiping", "to-yes", "to-no");
  }
  stage.addEventListener("pointerdown", (e) => {
    lastPointer = e.pointerType || "mouse";
    if (e.pointerType !== "touch" && e.pointerType !== "pen") return;
    if (box.classList.contains("zoomed")) return; // panning the zoomed picture instead
    swipe.id = e.pointerId; swipe.x0 = e.clientX; swipe.y0 = e.clientY; swipe.dx = 0;
    swipe.moved = false;
  });
  stage.addEventListener("pointermove", (e) => {
    if (e.pointerId !== swipe.id) return;
    swipe.dx = e.clientX - swipe.x0;
    const dy = e.clientY - swipe.y0;
    if (!swipe.moved && Math.abs(swipe.dx) < 10) return;
    if (!swipe.moved && Math.abs(dy) > Math.abs(swipe.dx)) { swipe.id = null; return; }
    swipe.moved = true;
    stage.classList.add("swiping");
    stage.classList.toggle("to-yes", swipe.dx > 40);
    stage.classList.toggle("to-no", swipe.dx < -40);
    if (!reducedMotion) {
      stage.style.transform = `translateX(${swipe.dx}px) rotate(${swipe.dx / 40}deg)`;
    }
  });
  function endSwipe(e) {
    if (e.pointerId !== swipe.id) return;
    const dx = swipe.dx;
    const threshold = Math.min(90, stage.clientWidth * 0.22);
    swipe.id = null;
    if (swipe.moved && Math.abs(dx) >= threshold) {
      answer(dx > 0 ? "yes" : "no", "swipe");
    }
    resetSwipe();
    setTimeout(() => { swipe.moved = false; }, 50);
  }
  stage.addEventListener("pointerup", endSwipe);
  stage.addEventListener("pointercancel", endSwipe);

  // --- buttons and keys -----------------------------------------------------------
  document.addEventListener("pointerdown", (e) => { lastPointer = e.pointerType || "mouse"; }, true);
  answersEl.addEventListener("click", (e) => {
    const b = e.target.closest("button[data-answer]");
    if (!b) return;
    const kind = e.detail === 0 ? "keyboard" : lastPointer === "mouse" ? "mouse" : "touch";
    answer(b.dataset.answer, kind);
  });
  reasonsEl.addEventListener("click", (e) => {
    const b = e.target.closest("button[data-reason]");
    if (b) giveReason(b.dataset.reason);
  });
  undoBtn.addEventListener("click", undo);
  $("feedback-continue").addEventListener("click", closeFeedback);

  const REASON_KEYS = {};
  reasonsEl.querySelectorAll(".chip").forEach((b, i) => { REASON_KEYS[String(i + 1)] = b.dataset.reason; });

  document.addEventListener("keydown", (e) => {
    if (e.altKey || e.ctrlKey || e.metaKey) return;
    const t = e.target;
    const k = e.key;
    if (k === "Escape") {
      if (!drawer.hidden) { e.preventDefault(); closeDrawer(); return; }
      if (!toolsEl.hidden) { e.preventDefault(); toggleTools(false); viewToggle.focus(); return; }
    }
    if (t && (t.tagName === "INPUT" || t.tagName === "TEXTAREA" || t.tagName === "SELECT" ||
              t.isContentEditable)) return;
    // Inside the open drawer the keys read it (arrows scroll, Enter follows a link).
    if (t && t.closest && t.closest("#guide-drawer")) return;
    if (k === "g" || k === "G") { e.preventDefault(); if (drawer.hidden) openDrawer(); else closeDrawer(); return; }
    if (k === "c" || k === "C") { e.preventDefault(); toggleTools(); return; }
    if (feedbackOpen) {
      if (k === "Enter" || k === " " || k === "ArrowRight" || k === "ArrowLeft") {
        e.preventDefault();
        closeFeedback();
      } else if (k === "u" || k === "U" || k === "Backspace") {
        e.preventDefault();
        undo();
      }
      return;
    }
    let handled = true;
    if (k === "ArrowRight" || k === "y" || k === "Y") answer("yes", "keyboard");
    else if (k === "ArrowLeft" || k === "n" || k === "N") answer("no", "keyboard");
    else if (k === "ArrowDown" || k === "?") answer("unsure", "keyboard");
    else if (k === "u" || k === "U" || k === "Backspace") undo();
    else if (k === "z" || k === "Z") setZoom(!box.classList.contains("zoomed"));
    else if ((k === "f" || k === "F") && favBtn) toggleFavourite();
    else if (REASON_KEYS[k] && reasonFor !== null) giveReason(REASON_KEYS[k]);
    else handled = false;
    if (handled) e.preventDefault();
  });

  // --- start ----------------------------------------------------------------------
  (async function start() {
    await fill();
    show(queue.shift() || null);
    fill();
  })();
})();
