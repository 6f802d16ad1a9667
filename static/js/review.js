// Review page: the viewer (zoom, window level/width, Grad-CAM overlay), the decision form saved
// without a page reload, and keyboard shortcuts for the whole reading loop (press ? for the list).
// Moving between images and studies swaps the page's <main> in place, so focus lands on the next
// action instead of the top of a reloaded page. Without JavaScript the page still works as forms and links.
(() => {
  "use strict";

  let viewer = null; // controls of the viewer on the page now
  let busy = false; // a save or a move is in flight: keys wait for it

  function loadImage(url) {
    return new Promise((resolve, reject) => {
      const img = new Image();
      img.onload = () => resolve(img);
      img.onerror = () => reject(new Error("Could not load " + url));
      img.src = url;
    });
  }

  // Viridis: perceptually uniform and readable with red–green colour blindness (no rainbow),
  // dark violet (low) to yellow (high). The legend in the toolbar shows the same ramp.
  const STOPS = [
    [0.0, [68, 1, 84]],
    [0.125, [71, 45, 123]],
    [0.25, [59, 82, 139]],
    [0.375, [44, 114, 142]],
    [0.5, [33, 145, 140]],
    [0.625, [39, 173, 129]],
    [0.75, [92, 200, 99]],
    [0.875, [170, 220, 50]],
    [1.0, [253, 231, 37]],
  ];
  function ramp(t) {
    for (let i = 1; i < STOPS.length; i += 1) {
      if (t <= STOPS[i][0]) {
        const [t0, c0] = STOPS[i - 1];
        const [t1, c1] = STOPS[i];
        const f = (t - t0) / (t1 - t0);
        return c0.map((v, k) => Math.round(v + (c1[k] - v) * f));
      }
    }
    return STOPS[STOPS.length - 1][1];
  }

  // --- Viewer ------------------------------------------------------------------------------------
  function setupViewer(root) {
    const el = root.querySelector("[data-viewer]");
    if (!el) return null;
    const stage = el.querySelector("[data-stage]");
    const wrap = el.querySelector("[data-wrap]");
    const canvas = el.querySelector("[data-image-canvas]");
    const overlay = el.querySelector("[data-heatmap-canvas]");
    const levelInput = el.querySelector("[data-level]");
    const widthInput = el.querySelector("[data-width]");
    const zoomLabel = el.querySelector("[data-zoom-level]");
    const toggle = el.querySelector("[data-heatmap-toggle]");
    const opacityInput = el.querySelector("[data-heatmap-opacity]");
    const presets = el.querySelectorAll("[data-preset]");

    let original = null; // ImageData of the image as received
    let heat = null; // heatmap intensities (0..255 = Grad-CAM 0..1) at the image's size
    let zoom = 1;

    function applyWindow() {
      if (!original) return;
      const level = Number(levelInput.value);
      const width = Number(widthInput.value);
      const low = level - width / 2;
      const lut = new Uint8ClampedArray(256);
      for (let v = 0; v < 256; v += 1) lut[v] = ((v - low) / width) * 255;
      const out = new ImageData(original.width, original.height);
      const src = original.data;
      const dst = out.data;
      for (let i = 0; i < src.length; i += 4) {
        dst[i] = lut[src[i]];
        dst[i + 1] = lut[src[i + 1]];
        dst[i + 2] = lut[src[i + 2]];
        dst[i + 3] = 255;
      }
      canvas.getContext("2d").putImageData(out, 0, 0);
    }

    function markPreset() {
      presets.forEach((button) => {
        const on =
          Number(button.dataset.presetLevel) === Number(levelInput.value) &&
          Number(button.dataset.presetWidth) === Number(widthInput.value);
        button.setAttribute("aria-pressed", String(on));
      });
    }

    function preset(key) {
      const button = el.querySelector(`[data-preset="${key}"]`);
      if (!button) return;
      levelInput.value = button.dataset.presetLevel;
      widthInput.value = button.dataset.presetWidth;
      applyWindow();
      markPreset();
    }

    function fitZoom() {
      const w = stage.clientWidth - 16;
      const h = stage.clientHeight - 16;
      return Math.max(0.05, Math.min(w / canvas.width, h / canvas.height));
    }

    function setZoom(value) {
      zoom = Math.min(Math.max(value, 0.05), 64);
      const w = Math.round(canvas.width * zoom);
      const h = Math.round(canvas.height * zoom);
      for (const c of [canvas, overlay]) {
        c.style.width = w + "px";
        c.style.height = h + "px";
      }
      wrap.style.width = w + "px";
      wrap.style.height = h + "px";
      // Enlarged pixels stay sharp squares, so the reader sees the real resolution.
      canvas.style.imageRendering = zoom > 2 ? "pixelated" : "auto";
      zoomLabel.textContent = Math.round(zoom * 100) + "%";
    }

    const zoomIn = () => setZoom(zoom * 1.25);
    const zoomOut = () => setZoom(zoom / 1.25);
    const fit = () => setZoom(fitZoom());

    el.querySelectorAll("[data-zoom]").forEach((button) =>
      button.addEventListener("click", () => {
        const kind = button.dataset.zoom;
        if (kind === "in") zoomIn();
        else if (kind === "out") zoomOut();
        else fit();
      }),
    );
    stage.addEventListener(
      "wheel",
      (event) => {
        if (!event.ctrlKey && !event.metaKey) return; // plain wheel scrolls the page
        event.preventDefault();
        setZoom(event.deltaY < 0 ? zoom * 1.1 : zoom / 1.1);
      },
      { passive: false },
    );

    // Drag to pan when the image is larger than the stage.
    let drag = null;
    stage.addEventListener("pointerdown", (event) => {
      drag = { x: event.clientX, y: event.clientY, left: stage.scrollLeft, top: stage.scrollTop };
      stage.setPointerCapture(event.pointerId);
    });
    stage.addEventListener("pointermove", (event) => {
      if (!drag) return;
      stage.scrollLeft = drag.left - (event.clientX - drag.x);
      stage.scrollTop = drag.top - (event.clientY - drag.y);
    });
    stage.addEventListener("pointerup", () => {
      drag = null;
    });

    function drawHeatmap() {
      if (!heat) return;
      const opacity = Number(opacityInput.value) / 100;
      const out = new ImageData(overlay.width, overlay.height);
      for (let p = 0, i = 0; p < heat.length; p += 1, i += 4) {
        const t = heat[p] / 255;
        const [r, g, b] = ramp(t);
        out.data[i] = r;
        out.data[i + 1] = g;
        out.data[i + 2] = b;
        // Weak activations fade out so the anatomy stays visible under them.
        out.data[i + 3] = Math.round(255 * opacity * Math.min(1, t * 1.5));
      }
      overlay.getContext("2d").putImageData(out, 0, 0);
    }

    async function loadHeatmap() {
      const img = await loadImage(el.dataset.heatmapUrl);
      // Drawn at the image's size; a heatmap of another size is stretched onto it.
      const scratch = document.createElement("canvas");
      scratch.width = canvas.width;
      scratch.height = canvas.height;
      const ctx = scratch.getContext("2d");
      ctx.drawImage(img, 0, 0, scratch.width, scratch.height);
      const rgba = ctx.getImageData(0, 0, scratch.width, scratch.height).data;
      heat = new Uint8ClampedArray(scratch.width * scratch.height);
      for (let p = 0; p < heat.length; p += 1) heat[p] = rgba[p * 4];
      overlay.width = canvas.width;
      overlay.height = canvas.height;
      drawHeatmap();
    }

    async function toggleHeatmap() {
      if (!toggle || toggle.disabled) return;
      const on = toggle.getAttribute("aria-pressed") !== "true";
      toggle.setAttribute("aria-pressed", String(on));
      if (on && !heat) {
        try {
          await loadHeatmap();
        } catch (error) {
          toggle.setAttribute("aria-pressed", "false");
          toggle.textContent = "Heatmap unavailable";
          toggle.disabled = true;
          return;
        }
      }
      overlay.hidden = !on;
      el.dataset.heatmapShown = String(on);
    }

    if (toggle) {
      toggle.addEventListener("click", toggleHeatmap);
      opacityInput.addEventListener("input", drawHeatmap);
    }
    levelInput.addEventListener("input", () => {
      applyWindow();
      markPreset();
    });
    widthInput.addEventListener("input", () => {
      applyWindow();
      markPreset();
    });
    presets.forEach((button) => button.addEventListener("click", () => preset(button.dataset.preset)));
    el.querySelector("[data-reset]").addEventListener("click", () => {
      levelInput.value = 128;
      widthInput.value = 256;
      applyWindow();
      markPreset();
      fit();
    });
    markPreset();

    loadImage(el.dataset.imageUrl).then((img) => {
      canvas.width = img.naturalWidth;
      canvas.height = img.naturalHeight;
      const ctx = canvas.getContext("2d");
      ctx.drawImage(img, 0, 0);
      original = ctx.getImageData(0, 0, canvas.width, canvas.height);
      applyWindow();
      fit();
      el.dataset.ready = "true";
    });

    return { zoomIn, zoomOut, fit, toggleHeatmap, preset };
  }

  // --- Decision form -----------------------------------------------------------------------------
  function reviewForm() {
    return document.querySelector("[data-review-form]");
  }

  // The decision controls of a review form; the amendment form names them with the prefix "amend-".
  function setupDecision(form, prefix = "") {
    const select = form.querySelector(`select[name="${prefix}final_label"]`);
    const aiLabel = document.querySelector("[data-ai-label]").textContent.trim();
    const sync = () => {
      const decision = form.querySelector(`input[name="${prefix}decision"]:checked`);
      const agree = Boolean(decision && decision.value === "agree");
      const override = Boolean(decision && decision.value === "override");
      // Agree means the AI's label; an override starts from no label, never the AI's.
      if (agree) select.value = aiLabel;
      else if (override && select.value === aiLabel) select.value = "";
      select.disabled = agree;
    };
    form.querySelectorAll(`input[name="${prefix}decision"]`).forEach((radio) => radio.addEventListener("change", sync));
    sync();
  }

  function setupForm(form) {
    if (!form) return;
    setupDecision(form);
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      save(form);
    });
  }

  // The amendment is sent like the review: the page then shows the new decision with the earlier
  // one in the history, without a reload; its errors come back next to their controls.
  function setupAmend(form) {
    if (!form) return;
    setupDecision(form, "amend-");
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      send(form, { focus: "[data-review-summary]", push: false, keepScroll: true });
    });
  }

  function choose(value) {
    const form = reviewForm();
    if (!form) return;
    const radio = form.querySelector(`input[name=decision][value="${value}"]`);
    radio.checked = true;
    radio.dispatchEvent(new Event("change", { bubbles: true }));
    if (value === "override") form.querySelector("select[name=final_label]").focus();
    else radio.focus();
  }

  function save(form) {
    return send(form);
  }

  // Posts a form of the page; the answer says where to go next (JSON), or is the page again with
  // the form's errors (HTML). ``focus`` picks what gets the focus on the page that follows.
  async function send(form, { focus = null, push = true, keepScroll = false } = {}) {
    if (busy) return;
    busy = true;
    const button = form.querySelector("button[type=submit]");
    button.disabled = true;
    try {
      const response = await fetch(form.action, {
        method: "POST",
        body: new FormData(form),
        credentials: "same-origin",
        headers: { Accept: "application/json", "X-Requested-With": "fetch" },
      });
      const type = response.headers.get("Content-Type") || "";
      if (response.ok && type.includes("application/json")) {
        const answer = await response.json();
        busy = false;
        await go(answer.next, { push, focus, keepScroll });
        return;
      }
      if (response.ok && type.includes("text/html")) {
        // The form came back with its errors, each next to its control.
        swap(await response.text(), null);
        return;
      }
      throw new Error("status " + response.status);
    } catch (error) {
      button.disabled = false;
      const note = form.querySelector("[data-save-error]") || document.createElement("p");
      note.className = "field__error";
      note.dataset.saveError = "";
      note.setAttribute("role", "alert");
      note.textContent = "The review could not be saved (" + error.message + "); try again.";
      button.before(note);
    } finally {
      busy = false;
    }
  }

  // --- Moving without a reload -------------------------------------------------------------------
  async function go(url, { push = true, focus = null, keepScroll = false } = {}) {
    if (busy) return;
    busy = true;
    try {
      const response = await fetch(url, { credentials: "same-origin", headers: { "X-Requested-With": "fetch" } });
      const type = response.headers.get("Content-Type") || "";
      if (!response.ok || !type.includes("text/html")) {
        window.location.assign(url);
        return;
      }
      const html = await response.text();
      if (!swap(html, response.url || url, { push, focus, keepScroll })) window.location.assign(response.url || url);
    } catch (error) {
      window.location.assign(url);
    } finally {
      busy = false;
    }
  }

  // Replaces <main> with the one of another review page; false when the page is of another kind.
  // Like a page load it starts at the top, so the patient banner and the message about what was
  // just saved are in view (the focus moves without scrolling); an amendment keeps the reader's place.
  function swap(html, url, { push = true, focus = null, keepScroll = false } = {}) {
    const doc = new DOMParser().parseFromString(html, "text/html");
    const next = doc.querySelector("main");
    if (!next || !next.querySelector(".reading-head")) return false;
    document.querySelector("main").replaceWith(document.adoptNode(next));
    document.title = doc.title;
    if (url && push) window.history.pushState({}, "", url);
    else if (url) window.history.replaceState({}, "", url);
    if (url && !keepScroll) window.scrollTo(0, 0);
    start(focus);
    return true;
  }

  function focusNextAction(preferred) {
    const main = document.querySelector("main");
    const target =
      main.querySelector("[data-amend-form] [aria-invalid=true]") ||
      main.querySelector("[data-amend-form] .form-errors") ||
      (preferred && main.querySelector(preferred)) ||
      main.querySelector("[data-review-form] [aria-invalid=true]") ||
      main.querySelector("[data-review-form] input[name=decision]:checked") ||
      main.querySelector("[data-review-form] input[name=decision]") ||
      main.querySelector("[data-next-action]") ||
      main;
    if (target.matches(".form-errors")) target.tabIndex = -1;
    target.focus({ preventScroll: !target.closest("[data-amend-form]") });
  }

  // --- Agree with all: one confirmation in a modal dialog -----------------------------------------
  function agreeAllDialog() {
    return document.querySelector("main [data-agree-all-dialog]");
  }

  function openAgreeAll() {
    const dialog = agreeAllDialog();
    if (!dialog || dialog.open) return;
    // showModal keeps focus inside the dialog and puts it on the confirm button (autofocus);
    // closing it (Cancel or Esc) gives the focus back to what had it.
    const opener = document.activeElement;
    dialog.addEventListener("close", () => opener && opener.isConnected && opener.focus(), { once: true });
    dialog.showModal();
  }

  async function agreeAll(form) {
    if (busy) return;
    busy = true;
    const dialog = form.closest("dialog");
    const error = form.querySelector("[data-agree-all-error]");
    form.querySelectorAll("button").forEach((button) => (button.disabled = true));
    try {
      const response = await fetch(form.action, {
        method: "POST",
        body: new FormData(form),
        credentials: "same-origin",
        headers: { Accept: "application/json", "X-Requested-With": "fetch" },
      });
      const type = response.headers.get("Content-Type") || "";
      if (!response.ok || !type.includes("application/json")) throw new Error("status " + response.status);
      const answer = await response.json();
      busy = false;
      dialog.close();
      await go(answer.next);
    } catch (failure) {
      form.querySelectorAll("button").forEach((button) => (button.disabled = false));
      error.textContent = "Nothing was saved (" + failure.message + "); try again.";
      error.hidden = false;
    } finally {
      busy = false;
    }
  }

  // --- Keyboard ----------------------------------------------------------------------------------
  function typing(target) {
    return target.matches("textarea, select, input:not([type=radio]):not([type=checkbox]):not([type=range])");
  }

  function help() {
    return document.querySelector("[data-help]");
  }

  function openHelp() {
    const dialog = help();
    if (dialog && !dialog.open) dialog.showModal();
  }

  function navigate(which) {
    const link = document.querySelector(`main [data-nav="${which}"]`);
    if (link) go(link.href);
  }

  document.addEventListener("keydown", (event) => {
    if (document.querySelector("dialog[open]")) return; // a dialog has the keys; it closes itself on Esc
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey) && event.target.closest("[data-amend-form]")) {
      event.preventDefault();
      event.target.closest("[data-amend-form]").requestSubmit();
      return;
    }
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
      const form = reviewForm();
      if (form) {
        event.preventDefault();
        save(form);
      }
      return;
    }
    if (event.ctrlKey || event.metaKey || event.altKey || typing(event.target) || busy) return;
    const actions = {
      j: () => navigate("next"),
      PageDown: () => navigate("next"),
      k: () => navigate("previous"),
      PageUp: () => navigate("previous"),
      a: () => choose("agree"),
      A: openAgreeAll,
      o: () => choose("override"),
      c: () => reviewForm() && reviewForm().querySelector("textarea").focus(),
      s: () => reviewForm() && save(reviewForm()),
      h: () => viewer && viewer.toggleHeatmap(),
      "+": () => viewer && viewer.zoomIn(),
      "=": () => viewer && viewer.zoomIn(),
      "-": () => viewer && viewer.zoomOut(),
      0: () => viewer && viewer.fit(),
      "?": openHelp,
    };
    let action = actions[event.key];
    if (!action && /^[1-9]$/.test(event.key)) action = () => viewer && viewer.preset(event.key);
    if (!action) return;
    event.preventDefault();
    action();
  });

  document.addEventListener("click", (event) => {
    const link = event.target.closest("main [data-nav]");
    if (link && !event.ctrlKey && !event.metaKey && !event.shiftKey && event.button === 0) {
      event.preventDefault();
      go(link.href);
    } else if (event.target.closest("[data-help-open]")) {
      openHelp();
    } else if (event.target.closest("main [data-agree-all]") && event.button === 0) {
      event.preventDefault();
      openAgreeAll();
    } else if (event.target.closest("[data-dialog-cancel]")) {
      event.target.closest("dialog").close();
    }
  });

  document.addEventListener("submit", (event) => {
    const form = event.target.closest("[data-agree-all-form]");
    if (!form) return;
    event.preventDefault();
    agreeAll(form);
  });

  window.addEventListener("popstate", () => go(window.location.href, { push: false }));

  function start(focus = null) {
    viewer = setupViewer(document);
    setupForm(reviewForm());
    setupAmend(document.querySelector("main [data-amend-form]"));
    focusNextAction(focus);
  }

  start();
})();
