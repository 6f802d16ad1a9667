// Review viewer: zoom, window level/width on a canvas, and the Grad-CAM heatmap as a colour overlay.
// The heatmap arrives as 8-bit grayscale (0..255 = Grad-CAM 0..1) and is coloured here.
(() => {
  "use strict";

  const viewer = document.querySelector("[data-viewer]");
  if (!viewer) return;

  const stage = viewer.querySelector("[data-stage]");
  const wrap = viewer.querySelector("[data-wrap]");
  const canvas = viewer.querySelector("[data-image-canvas]");
  const overlay = viewer.querySelector("[data-heatmap-canvas]");
  const levelInput = viewer.querySelector("[data-level]");
  const widthInput = viewer.querySelector("[data-width]");
  const zoomLabel = viewer.querySelector("[data-zoom-level]");
  const toggle = viewer.querySelector("[data-heatmap-toggle]");
  const opacityInput = viewer.querySelector("[data-heatmap-opacity]");

  let original = null; // ImageData of the image as received
  let heat = null; // Uint8ClampedArray of heatmap intensities at the image's size
  let zoom = 1;

  function loadImage(url) {
    return new Promise((resolve, reject) => {
      const img = new Image();
      img.onload = () => resolve(img);
      img.onerror = () => reject(new Error("Could not load " + url));
      img.src = url;
    });
  }

  // --- Window level / width ------------------------------------------------------------------
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

  // --- Zoom ----------------------------------------------------------------------------------
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

  viewer.querySelectorAll("[data-zoom]").forEach((button) =>
    button.addEventListener("click", () => {
      const kind = button.dataset.zoom;
      if (kind === "in") setZoom(zoom * 1.25);
      else if (kind === "out") setZoom(zoom / 1.25);
      else setZoom(fitZoom());
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

  // --- Heatmap -------------------------------------------------------------------------------
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
    const url = viewer.dataset.heatmapUrl;
    const img = await loadImage(url);
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

  if (toggle) {
    toggle.addEventListener("click", async () => {
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
      viewer.dataset.heatmapShown = String(on);
    });
    opacityInput.addEventListener("input", drawHeatmap);
  }

  // --- Start ---------------------------------------------------------------------------------
  levelInput.addEventListener("input", applyWindow);
  widthInput.addEventListener("input", applyWindow);
  viewer.querySelector("[data-reset]").addEventListener("click", () => {
    levelInput.value = 128;
    widthInput.value = 256;
    applyWindow();
    setZoom(fitZoom());
  });

  loadImage(viewer.dataset.imageUrl).then((img) => {
    canvas.width = img.naturalWidth;
    canvas.height = img.naturalHeight;
    const ctx = canvas.getContext("2d");
    ctx.drawImage(img, 0, 0);
    original = ctx.getImageData(0, 0, canvas.width, canvas.height);
    applyWindow();
    setZoom(fitZoom());
    viewer.dataset.ready = "true";
  });

  // Decision form: the final label only matters for an override.
  const form = document.querySelector("[data-review-form]");
  if (form) {
    const select = form.querySelector("select[name=final_label]");
    const aiLabel = document.querySelector("[data-ai-label]").textContent.trim();
    const sync = () => {
      const decision = form.querySelector("input[name=decision]:checked");
      const agree = decision && decision.value === "agree";
      if (agree) select.value = aiLabel;
      select.disabled = Boolean(agree);
    };
    form.querySelectorAll("input[name=decision]").forEach((radio) => radio.addEventListener("change", sync));
    sync();
  }
})();
