// The ARV console's small enhancements. Every page works without this file: forms post, links load.
// With it: drop files on the upload forms, check them before sending, show the upload's progress,
// follow the marker's status (and the videos') without a reload, copy links and keys.
(function () {
  "use strict";

  // Answers to the script's requests are JSON (the server tells forms and scripts apart by it).
  const SCRIPT_HEADER = "X-ARV-Console";
  const POLL_MS = 2000;

  function showError(form, text) {
    const box = form.querySelector("[data-upload-error]");
    box.textContent = text;
    box.hidden = false;
  }

  function accepted(input, file) {
    const types = (input.getAttribute("accept") || "").split(",").map((t) => t.trim()).filter(Boolean);
    // A file the browser has no type for is left to the server, which reads the file itself.
    return types.length === 0 || !file.type || types.includes(file.type);
  }

  function checkFiles(form) {
    const limit = Number(form.dataset.maxBytes);
    for (const input of form.querySelectorAll("input[type=file]")) {
      for (const file of input.files) {
        if (!accepted(input, file)) return { input, text: `${file.name}: ${form.dataset.wrongType}` };
        if (limit && file.size > limit) return { input, text: `${file.name}: ${form.dataset.tooLarge}` };
      }
    }
    return null;
  }

  function enableDrop(zone) {
    const input = zone.querySelector("input[type=file]");
    zone.addEventListener("dragover", (event) => {
      event.preventDefault();
      zone.classList.add("over");
    });
    zone.addEventListener("dragleave", () => zone.classList.remove("over"));
    zone.addEventListener("drop", (event) => {
      event.preventDefault();
      zone.classList.remove("over");
      if (event.dataTransfer && event.dataTransfer.files.length) {
        input.files = event.dataTransfer.files;
        input.dispatchEvent(new Event("change", { bubbles: true }));
      }
    });
  }

  function sendWithProgress(form) {
    const progress = form.querySelector("[data-progress]");
    const bar = progress.querySelector("progress");
    const figure = progress.querySelector("[data-progress-text]");
    const button = form.querySelector("button[type=submit]");
    const request = new XMLHttpRequest();
    request.open("POST", form.action);
    request.setRequestHeader(SCRIPT_HEADER, "1");
    request.responseType = "json";
    request.upload.addEventListener("progress", (event) => {
      if (!event.lengthComputable) return;
      const percent = Math.floor((100 * event.loaded) / event.total);
      bar.value = percent;
      bar.textContent = `${percent}%`;
      figure.textContent = `${percent}%`;
    });
    request.addEventListener("load", () => {
      const answer = request.response || {};
      if (request.status === 200 && answer.location) {
        window.location.assign(answer.location);
        return;
      }
      button.disabled = false;
      showError(form, answer.detail || form.dataset.failed);
    });
    request.addEventListener("error", () => {
      button.disabled = false;
      showError(form, form.dataset.failed);
    });
    progress.hidden = false;
    button.disabled = true;
    request.send(new FormData(form));
  }

  function enableUpload(form) {
    form.querySelectorAll("[data-drop]").forEach(enableDrop);
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      form.querySelector("[data-upload-error]").hidden = true;
      const problem = checkFiles(form);
      if (problem) {
        showError(form, problem.text);
        problem.input.focus();
        return;
      }
      sendWithProgress(form);
    });
  }

  // The parts of the page marked data-live, as the server renders them now (the page is fetched,
  // not reloaded: the person's place, focus and typing stay).
  async function refreshLiveParts() {
    const response = await fetch(window.location.href, { credentials: "same-origin" });
    if (!response.ok) return;
    const fresh = new DOMParser().parseFromString(await response.text(), "text/html");
    for (const part of document.querySelectorAll("[data-live][id]")) {
      const now = fresh.getElementById(part.id);
      if (now) part.innerHTML = now.innerHTML;
    }
  }

  function followStatus(marker) {
    const settled = (answer) => answer.settled && answer.qr_ready;
    // What the page shows (the server sums it up in one string); when it changes, the page's live
    // parts are fetched again.
    let before = marker.dataset.liveState;
    async function poll() {
      let answer;
      try {
        const response = await fetch(marker.dataset.statusUrl, {
          headers: { [SCRIPT_HEADER]: "1" },
          credentials: "same-origin",
        });
        if (!response.ok) throw new Error(String(response.status));
        answer = await response.json();
      } catch (_) {
        window.setTimeout(poll, POLL_MS * 3); // the server is away for a moment: ask again later
        return;
      }
      marker.dataset.markerStatus = answer.marker_status;
      marker.textContent = answer.marker_label;
      let videosBusy = false;
      for (const video of answer.videos) {
        const badge = document.querySelector(`[data-video-status="${video.id}"]`);
        if (badge) {
          badge.textContent = video.label;
          badge.className = `badge ${video.rendition_status}`;
        }
        videosBusy =
          videosBusy || video.poster_pending || ["pending", "processing"].includes(video.rendition_status);
      }
      if (answer.live_state !== before) await refreshLiveParts().catch(() => {});
      before = answer.live_state;
      if (!settled(answer) || videosBusy) window.setTimeout(poll, POLL_MS);
    }
    window.setTimeout(poll, POLL_MS);
  }

  function enableCopy(button) {
    button.addEventListener("click", async () => {
      const field = document.querySelector(button.dataset.copy);
      const label = button.textContent;
      try {
        await navigator.clipboard.writeText(field.value);
      } catch (_) {
        field.select(); // no clipboard access (plain HTTP): leave it selected for Ctrl-C
        return;
      }
      button.textContent = button.dataset.copied;
      window.setTimeout(() => (button.textContent = label), 2000);
    });
  }

  document.querySelectorAll("form[data-upload]").forEach(enableUpload);
  document.querySelectorAll("[data-copy]").forEach(enableCopy);
  const marker = document.querySelector("[data-marker-status][data-status-url]");
  if (marker) followStatus(marker);
})();
