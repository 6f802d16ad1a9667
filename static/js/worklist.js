// Worklist: polls its results fragment so that new and changed studies appear without a reload.
// What changed is said once in a polite live region ("2 new studies"); a STAT study that arrives is
// announced once, assertively, and marked "New". Polling pauses while the tab is hidden.
(() => {
  "use strict";

  const results = document.querySelector("[data-worklist-results]");
  if (!results) return;
  const status = document.querySelector("[data-worklist-status]");
  const alert = document.querySelector("[data-worklist-alert]");
  // STAT arrivals already announced in this tab, so a later poll, page or filter never repeats one.
  const ANNOUNCED_KEY = "medportal.worklist.announced-stat";
  const STAT = "1";
  let timer = null;
  let polls = 0;

  function rowsOf(root) {
    const rows = new Map();
    root.querySelectorAll("tr[data-study-id]").forEach((row) => rows.set(row.dataset.studyId, row));
    return rows;
  }

  function versions(rows) {
    return new Map([...rows].map(([id, row]) => [id, row.dataset.version]));
  }

  // Studies on the page when it opened are not news; neither is one that comes back after a sort.
  let shown = versions(rowsOf(results));
  const seen = new Set(shown.keys());
  const arrived = new Set();
  let lastHtml = null;

  function announcedStat() {
    try {
      return new Set(JSON.parse(sessionStorage.getItem(ANNOUNCED_KEY) || "[]"));
    } catch (error) {
      return new Set();
    }
  }

  function rememberStat(ids) {
    const all = [...announcedStat(), ...ids];
    try {
      sessionStorage.setItem(ANNOUNCED_KEY, JSON.stringify(all.slice(-500)));
    } catch (error) {
      // Storage full or disabled: the in-page set below still prevents repeats on this page.
    }
  }

  function count(n, one, many) {
    return n + " " + (n === 1 ? one : many);
  }

  function say(region, text) {
    if (!region || !text) return;
    region.textContent = text;
  }

  function markArrived() {
    results.querySelectorAll("tr[data-study-id]").forEach((row) => {
      const isNew = arrived.has(row.dataset.studyId);
      row.classList.toggle("worklist__row--new", isNew);
      row.classList.toggle("worklist__row--stat-new", isNew && row.dataset.priority === STAT);
      const badge = row.querySelector(".worklist__new");
      if (badge) badge.hidden = !isNew;
    });
  }

  // Replacing the results must not throw away the keyboard user's place.
  function focusedPlace() {
    const active = document.activeElement;
    if (!active || !results.contains(active)) return null;
    const row = active.closest("tr[data-study-id]");
    if (row) return { selector: `tr[data-study-id="${row.dataset.studyId}"] .worklist__action a` };
    if (active.dataset.sort) return { selector: `[data-sort="${active.dataset.sort}"]` };
    if (active.rel) return { selector: `.pagination a[rel="${active.rel}"]` };
    return { selector: null };
  }

  function restoreFocus(place) {
    if (!place) return;
    const target = place.selector && results.querySelector(place.selector);
    if (target) {
      target.focus();
    } else {
      results.focus();
    }
  }

  function interval() {
    // Read on every tick, so a test (or a later setting) can change it on an open page.
    const seconds = parseFloat(results.dataset.pollSeconds);
    return (seconds > 0 ? seconds : 15) * 1000;
  }

  function schedule() {
    clearTimeout(timer);
    if (!document.hidden) timer = setTimeout(poll, interval());
  }

  function update(html) {
    const next = document.createElement("div");
    next.innerHTML = html;
    const rows = rowsOf(next);
    const added = [];
    let changed = 0;
    rows.forEach((row, id) => {
      if (!seen.has(id)) added.push(row);
      else if (shown.has(id) && shown.get(id) !== row.dataset.version) changed += 1;
    });
    const left = [...shown.keys()].filter((id) => !rows.has(id)).length;

    // Unchanged results are left alone (the rows' "New" marks are added after a replacement).
    if (html !== lastHtml) {
      const place = focusedPlace();
      results.innerHTML = html;
      lastHtml = html;
      restoreFocus(place);
    }
    added.forEach((row) => {
      seen.add(row.dataset.studyId);
      arrived.add(row.dataset.studyId);
    });
    shown = versions(rows);
    markArrived();

    const already = announcedStat();
    const stat = added.filter((row) => row.dataset.priority === STAT && !already.has(row.dataset.studyId));
    if (stat.length) {
      rememberStat(stat.map((row) => row.dataset.studyId));
      const names = stat.map((row) => {
        const exam = row.querySelector('[data-label="Exam"]');
        return row.dataset.accession + (exam ? ", " + exam.textContent.trim() : "");
      });
      say(alert, (stat.length === 1 ? "New STAT study: " : "New STAT studies: ") + names.join("; ") + ".");
    }
    const others = added.length - stat.length;
    const parts = [];
    if (others) parts.push(count(others, "new study", "new studies"));
    if (changed) parts.push(count(changed, "study updated", "studies updated"));
    if (left) parts.push(count(left, "study left the list", "studies left the list"));
    if (parts.length) {
      const time = new Date().toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
      say(status, parts.join(", ") + " (" + time + ").");
    }
  }

  async function poll() {
    if (document.hidden) return;
    try {
      // Conditional: rows the page already shows come back as 304, with no body (and no audit row).
      const headers = { "X-Requested-With": "fetch" };
      if (results.dataset.rowsEtag) headers["If-None-Match"] = results.dataset.rowsEtag;
      const response = await fetch(results.dataset.rowsUrl, {
        headers,
        credentials: "same-origin",
        cache: "no-store",
      });
      // Signed out (idle on a shared workstation, say): the polls do not keep a session alive, and
      // the list must not stay on screen either. Reloading shows the log in page instead.
      if (response.redirected) {
        window.location.reload();
        return;
      }
      if (response.status === 403) return; // the role was withdrawn: the next action says so
      if (response.ok) {
        results.dataset.rowsEtag = response.headers.get("ETag") || "";
        update(await response.text());
      }
    } catch (error) {
      // A dropped connection is retried on the next tick.
    }
    polls += 1;
    results.dataset.polls = String(polls);
    schedule();
  }

  document.addEventListener("visibilitychange", () => {
    clearTimeout(timer);
    if (!document.hidden) poll();
  });
  results.setAttribute("tabindex", "-1");
  schedule();
})();
