// Review page: the patient's prior studies in a panel (p or the "Prior studies" button) and a prior
// image side by side with the current one in a dialog. The panel's content is fetched when it is
// first opened, so the server records that read only when it happens. review.js replaces <main>
// when the reader moves to another image or study, so every element is looked up when it is used.
// Without JavaScript the patient's name still links to the patient page and its studies.
(() => {
  "use strict";

  const find = (selector, root = document) => root.querySelector(selector);
  let opener = null; // the Compare button that opened the dialog: focus goes back to it

  function typing(target) {
    return target.matches("textarea, select, input:not([type=radio]):not([type=checkbox]):not([type=range])");
  }

  // --- The panel ---------------------------------------------------------------------------------
  function panel() {
    return find("main [data-priors]");
  }

  function toggleButton() {
    return find("main [data-priors-toggle]");
  }

  async function load(el) {
    const body = find("[data-priors-body]", el);
    const status = find("[data-priors-status]", el);
    body.setAttribute("aria-busy", "true");
    try {
      const response = await fetch(el.dataset.priorsUrl, {
        credentials: "same-origin",
        headers: { "X-Requested-With": "fetch" },
      });
      const type = response.headers.get("Content-Type") || "";
      if (!response.ok || !type.includes("text/html")) throw new Error("status " + response.status);
      // Our own page fragment, escaped by the template engine like every page.
      body.innerHTML = await response.text();
      el.dataset.loaded = "true";
      const summary = find("[data-priors-summary]", body);
      status.textContent = summary ? summary.textContent : "";
    } catch (error) {
      const note = document.createElement("p");
      note.className = "field__error";
      note.textContent = "The prior studies could not be loaded (" + error.message + "). Close and open again to retry.";
      body.replaceChildren(note);
      status.textContent = note.textContent;
    } finally {
      body.setAttribute("aria-busy", "false");
    }
  }

  function openPanel() {
    const el = panel();
    if (!el) return;
    el.hidden = false;
    const button = toggleButton();
    if (button) button.setAttribute("aria-expanded", "true");
    find("#priors-title", el).focus();
    if (!el.dataset.loaded) load(el);
  }

  function closePanel() {
    const el = panel();
    if (!el || el.hidden) return;
    el.hidden = true;
    const button = toggleButton();
    if (button) {
      button.setAttribute("aria-expanded", "false");
      button.focus();
    }
  }

  // review.js replaces <main> when the reader moves to another image of the study: an open panel
  // stays open with what it shows (read once, audited once). Another study's panel starts closed.
  new MutationObserver((mutations) => {
    for (const mutation of mutations) {
      const before = [...mutation.removedNodes].find((node) => node.nodeName === "MAIN");
      const after = [...mutation.addedNodes].find((node) => node.nodeName === "MAIN");
      const old = before && find("[data-priors]", before);
      const fresh = after && find("[data-priors]", after);
      if (!old || !fresh || old.hidden || !old.dataset.loaded) continue;
      if (old.dataset.priorsUrl !== fresh.dataset.priorsUrl) continue;
      find("[data-priors-body]", fresh).replaceChildren(...find("[data-priors-body]", old).childNodes);
      fresh.dataset.loaded = "true";
      fresh.hidden = false;
      fresh.scrollTop = old.scrollTop;
      const button = find("[data-priors-toggle]", after);
      if (button) button.setAttribute("aria-expanded", "true");
    }
  }).observe(document.body, { childList: true });

  // --- The comparison ----------------------------------------------------------------------------
  function dialog() {
    return find("main [data-compare]");
  }

  function pane(side) {
    return find(`main [data-compare-pane="${side}"]`);
  }

  // The same display window as the main viewer (value -> (value - low) / width), on an <img>
  // through an SVG filter, so the browser keeps the picture and its natural size.
  function applyWindow(el) {
    const level = Number(find("[data-compare-level]", el).value);
    const width = Number(find("[data-compare-width]", el).value);
    const slope = 255 / width;
    const intercept = -(level - width / 2) / width;
    el.querySelectorAll("feFuncR, feFuncG, feFuncB").forEach((fn) => {
      fn.setAttribute("slope", slope.toFixed(4));
      fn.setAttribute("intercept", intercept.toFixed(4));
    });
  }

  function setZoom(el, value) {
    const img = find("[data-compare-img]", el);
    if (!img.naturalWidth) return;
    const zoom = Math.min(Math.max(value, 0.05), 64);
    el.dataset.zoom = String(zoom);
    img.style.width = Math.round(img.naturalWidth * zoom) + "px";
    img.style.height = Math.round(img.naturalHeight * zoom) + "px";
    img.style.imageRendering = zoom > 2 ? "pixelated" : "auto";
    find("[data-compare-zoom-level]", el).textContent = Math.round(zoom * 100) + "%";
  }

  function fit(el) {
    const img = find("[data-compare-img]", el);
    const stage = find(".compare__stage", el);
    if (!img.naturalWidth) return;
    const w = stage.clientWidth - 16;
    const h = stage.clientHeight - 16;
    setZoom(el, Math.max(0.05, Math.min(w / img.naturalWidth, h / img.naturalHeight)));
  }

  function zoom(el, how) {
    const now = Number(el.dataset.zoom || 1);
    if (how === "in") setZoom(el, now * 1.25);
    else if (how === "out") setZoom(el, now / 1.25);
    else fit(el);
  }

  function reset(el) {
    find("[data-compare-level]", el).value = 128;
    find("[data-compare-width]", el).value = 256;
    applyWindow(el);
    fit(el);
  }

  function show(el, url, label) {
    const img = find("[data-compare-img]", el);
    const missing = find("[data-compare-missing]", el);
    find("[data-compare-label]", el).textContent = label;
    el.dataset.ready = "false";
    missing.hidden = Boolean(url);
    img.hidden = !url;
    find("[data-compare-level]", el).value = 128;
    find("[data-compare-width]", el).value = 256;
    applyWindow(el);
    if (!url) return;
    img.alt = label;
    const done = () => {
      fit(el);
      el.dataset.ready = "true";
    };
    img.onload = done;
    img.onerror = () => {
      img.hidden = true;
      missing.hidden = false;
      missing.textContent = "The image could not be loaded.";
    };
    if (img.getAttribute("src") === url && img.complete && img.naturalWidth) done();
    else img.src = url;
  }

  function openCompare(button) {
    const el = dialog();
    if (!el) return;
    opener = button;
    const viewer = find("main [data-viewer]");
    const name = find("main .viewer__name");
    const current = [el.dataset.currentLabel, name && name.textContent.trim()].filter(Boolean).join(" · ");
    el.showModal();
    show(pane("current"), viewer ? viewer.dataset.imageUrl : "", current);
    show(pane("prior"), button.dataset.compareUrl, button.dataset.compareLabel);
  }

  // "close" does not bubble: listen in the capture phase, whichever <main> is on the page.
  document.addEventListener(
    "close",
    (event) => {
      if (!event.target.matches || !event.target.matches("[data-compare]")) return;
      if (opener && opener.isConnected) opener.focus();
      opener = null;
    },
    true,
  );

  // --- Keys and clicks ---------------------------------------------------------------------------
  // The capture phase runs before review.js: while the comparison is open its keys stay in it,
  // and nothing is decided on the page behind the dialog.
  window.addEventListener(
    "keydown",
    (event) => {
      const compare = dialog();
      if (compare && compare.open) {
        event.stopPropagation();
        if (event.ctrlKey || event.metaKey || event.altKey || typing(event.target)) return;
        const panes = compare.querySelectorAll("[data-compare-pane]");
        const how = { "+": "in", "=": "in", "-": "out", 0: "fit" }[event.key];
        // The main viewer's window presets, for both images at once.
        const preset = /^[1-9]$/.test(event.key) && find(`main [data-viewer] [data-preset="${event.key}"]`);
        if (how) {
          event.preventDefault();
          panes.forEach((el) => zoom(el, how));
        } else if (preset) {
          event.preventDefault();
          panes.forEach((el) => {
            find("[data-compare-level]", el).value = preset.dataset.presetLevel;
            find("[data-compare-width]", el).value = preset.dataset.presetWidth;
            applyWindow(el);
          });
        }
        return;
      }
      const help = find("[data-help]");
      if (help && help.open) return;
      const el = panel();
      if (!el) return;
      if (event.key === "Escape" && !el.hidden) {
        event.preventDefault();
        closePanel();
        return;
      }
      if (event.key !== "p" || event.ctrlKey || event.metaKey || event.altKey || typing(event.target)) return;
      event.preventDefault();
      if (el.hidden) openPanel();
      else closePanel();
    },
    true,
  );

  document.addEventListener("click", (event) => {
    const target = event.target;
    if (target.closest("[data-priors-toggle]")) {
      if (panel() && panel().hidden) openPanel();
      else closePanel();
      return;
    }
    if (target.closest("[data-priors-close]")) {
      closePanel();
      return;
    }
    const compareButton = target.closest("[data-compare-open]");
    if (compareButton) {
      openCompare(compareButton);
      return;
    }
    const el = target.closest("[data-compare-pane]");
    if (!el) return;
    const zoomButton = target.closest("[data-compare-zoom]");
    if (zoomButton) zoom(el, zoomButton.dataset.compareZoom);
    else if (target.closest("[data-compare-reset]")) reset(el);
  });

  document.addEventListener("input", (event) => {
    if (!event.target.matches("[data-compare-level], [data-compare-width]")) return;
    applyWindow(event.target.closest("[data-compare-pane]"));
  });
})();
