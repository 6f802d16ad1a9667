// Study page and DICOM import page: drag-and-drop upload with one request (and one progress bar)
// per file, and on the study page live AI results: the results fragment is polled while anything
// is queued or running.
(() => {
  "use strict";

  const results = document.getElementById("study-results");
  const POLL_MS = 2000;
  let pollTimer = null;

  function isPending() {
    const inner = results && results.querySelector(".results");
    return inner ? inner.dataset.pending === "true" : false;
  }

  // The live region says only what changed (a result arrived, a reading failed), never the whole list.
  const status = document.querySelector("[data-results-status]");

  function statuses(root) {
    const seen = new Map();
    root.querySelectorAll("[data-prediction-id]").forEach((el) => seen.set(el.dataset.predictionId, el.dataset.predictionStatus));
    return seen;
  }

  function announcements(before, root) {
    const out = [];
    root.querySelectorAll("[data-prediction-id][data-announce]").forEach((el) => {
      if (before.get(el.dataset.predictionId) !== el.dataset.predictionStatus) out.push(el.dataset.announce);
    });
    return out;
  }

  function announce(text) {
    if (!status) return;
    status.textContent = text;
  }

  async function refreshResults() {
    if (!results) return;
    try {
      // Conditional: results the page already shows come back as 304, with no body (and no audit row).
      const headers = { "X-Requested-With": "fetch" };
      if (results.dataset.resultsEtag) headers["If-None-Match"] = results.dataset.resultsEtag;
      const response = await fetch(results.dataset.resultsUrl, {
        headers,
        credentials: "same-origin",
        cache: "no-store",
      });
      if (response.ok) {
        results.dataset.resultsEtag = response.headers.get("ETag") || "";
        const html = await response.text();
        const before = statuses(results);
        const next = document.createElement("div");
        next.innerHTML = html;
        const changes = announcements(before, next);
        // An unchanged fragment is left alone, so focus and the reading position stay where they are.
        if (next.innerHTML !== results.innerHTML) results.innerHTML = html;
        if (changes.length) announce(changes.join(" "));
        const inner = results.querySelector(".results");
        const badge = document.getElementById("study-status");
        if (inner && badge) {
          badge.textContent = inner.dataset.studyStatusLabel;
          badge.className = "badge badge--" + inner.dataset.studyStatus;
        }
      }
    } catch (error) {
      // A dropped connection is retried on the next tick.
    }
    schedulePoll();
  }

  function schedulePoll() {
    clearTimeout(pollTimer);
    if (isPending() || uploadsInFlight > 0) pollTimer = setTimeout(refreshResults, POLL_MS);
  }

  // --- Upload -----------------------------------------------------------------------------
  const form = document.querySelector("[data-upload-form]");
  let uploadsInFlight = 0;

  function showQueue(queue) {
    const note = document.querySelector("[data-queue-note]");
    if (!note || !queue) return;
    note.hidden = !queue.over_limit;
    note.textContent = queue.over_limit ? queue.message : "";
  }

  function uploadOne(file, list, csrfToken) {
    const item = document.createElement("li");
    item.className = "upload-item";
    const name = document.createElement("span");
    name.className = "upload-item__name";
    name.textContent = file.name;
    name.title = file.name;
    const bar = document.createElement("progress");
    bar.max = 100;
    bar.value = 0;
    bar.setAttribute("aria-label", "Upload progress of " + file.name);
    const state = document.createElement("span");
    state.className = "upload-item__state";
    state.textContent = "Waiting…";
    item.append(name, bar, state);
    list.append(item);

    return new Promise((resolve) => {
      const body = new FormData();
      body.append("files", file, file.name);
      const xhr = new XMLHttpRequest();
      xhr.open("POST", form.action);
      xhr.setRequestHeader("X-CSRFToken", csrfToken);
      xhr.setRequestHeader("Accept", "application/json");
      xhr.upload.addEventListener("progress", (event) => {
        if (event.lengthComputable) {
          bar.value = Math.round((event.loaded / event.total) * 100);
          state.textContent = bar.value + "%";
        }
      });
      xhr.addEventListener("load", () => {
        let result = null;
        try {
          const answer = JSON.parse(xhr.responseText);
          result = answer.results[0];
          showQueue(answer.queue);
        } catch (error) {
          const expired = xhr.responseURL && xhr.responseURL.includes("/login/");
          result = {
            ok: false,
            error: expired
              ? "Your session has expired: log in again, then upload this file again."
              : xhr.status === 413
                ? xhr.responseText // the request was too large; the server says the limit
                : "The server answered " + xhr.status + "; the file was not stored.",
          };
        }
        bar.value = 100;
        if (result && result.ok) {
          item.classList.add("upload-item--ok");
          // The server says what happened when it is more than "uploaded" (DICOM import, no AI).
          state.textContent = result.state || (result.duplicate ? "Already in this study" : "Uploaded — AI queued");
          if (result.note) {
            item.classList.add("upload-item--note");
            const note = document.createElement("p");
            note.className = "upload-item__note";
            note.textContent = result.note;
            item.append(note);
          }
          if (result.study_url) {
            const filed = document.createElement("p");
            filed.className = "upload-item__filed";
            filed.append(result.duplicate ? "Stored earlier in " : "Filed in ");
            const link = document.createElement("a");
            link.href = result.study_url;
            link.textContent = result.study_label;
            filed.append(link);
            item.append(filed);
          }
        } else {
          item.classList.add("upload-item--error");
          state.textContent = "Rejected";
          const reason = document.createElement("p");
          reason.className = "upload-item__error";
          reason.setAttribute("role", "alert");
          reason.textContent = (result && result.error) || "Upload failed.";
          item.append(reason);
        }
        resolve(result);
      });
      xhr.addEventListener("error", () => {
        item.classList.add("upload-item--error");
        state.textContent = "Network error — try again";
        resolve(null);
      });
      state.textContent = "Uploading…";
      xhr.send(body);
    });
  }

  async function uploadAll(files) {
    if (!files.length) return;
    const list = document.querySelector("[data-upload-list]");
    const csrfToken = form.querySelector("input[name=csrfmiddlewaretoken]").value;
    const button = form.querySelector("[data-upload-button]");
    uploadsInFlight += files.length;
    button.disabled = true;
    // Two at a time: quick for a batch, without flooding the server.
    const queue = Array.from(files);
    const workers = [0, 1].map(async () => {
      while (queue.length) {
        await uploadOne(queue.shift(), list, csrfToken);
        uploadsInFlight -= 1;
      }
    });
    await Promise.all(workers);
    button.disabled = false;
    form.reset();
    refreshResults();
  }

  if (form) {
    const input = form.querySelector("input[type=file]");
    const zone = form.querySelector("[data-dropzone]");
    // Choosing files already uploads them and then empties the control, so the button would only
    // ever meet an empty control and the browser's "select a file" complaint: it opens the chooser.
    form.noValidate = true;
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      if (input.files.length) uploadAll(input.files);
      else input.click();
    });
    input.addEventListener("change", () => uploadAll(input.files));
    ["dragenter", "dragover"].forEach((type) =>
      zone.addEventListener(type, (event) => {
        event.preventDefault();
        zone.classList.add("is-over");
      }),
    );
    ["dragleave", "drop"].forEach((type) =>
      zone.addEventListener(type, (event) => {
        event.preventDefault();
        zone.classList.remove("is-over");
      }),
    );
    zone.addEventListener("drop", (event) => uploadAll(event.dataTransfer.files));
  }

  schedulePoll();
})();
