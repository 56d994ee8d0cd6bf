// edgecount console, Count tasks page (ours; no framework, no CDN).
// * <form data-task-count="ID">: the blind count of task ID, sent as
//   {"items": [{"sku", "qty"}], "note"} to POST /tasks/ID/count with window.edgecount.api.
//   Blank lines are skipped; "Nothing is at this location" sends no line at all.
// * [data-add-line] adds a line (from <template id="count-line-template">), [data-remove-line]
//   removes one. What is typed is kept per task and put back after a live reload of <main>.
// * [data-scan] ("Scan barcode") is shown only where the browser has BarcodeDetector and a
//   camera (navigator.mediaDevices.getUserMedia); it fills the line's SKU.
"use strict";
(function () {
  const drafts = new Map(); // task id -> {lines: [{sku, qty}], note, empty}

  const canScan = () =>
    "BarcodeDetector" in window && !!(navigator.mediaDevices && navigator.mediaDevices.getUserMedia);
  const field = (root, name) => root.querySelector('[name="' + name + '"]');
  const lines = (form) => Array.from(form.querySelectorAll("[data-line]"));
  const formOf = (id) => document.querySelector('form[data-task-count="' + id + '"]');
  const api = () => window.edgecount;

  function prepare(root) {
    const shown = canScan();
    root.querySelectorAll("[data-scan]").forEach((button) => (button.hidden = !shown));
  }

  function addLine(form) {
    const template = document.getElementById("count-line-template");
    const line = template.content.firstElementChild.cloneNode(true);
    form.querySelector("[data-lines]").appendChild(line);
    prepare(line);
    return line;
  }

  function save(form) {
    drafts.set(form.dataset.taskCount, {
      lines: lines(form).map((line) => ({ sku: field(line, "sku").value, qty: field(line, "qty").value })),
      note: field(form, "note").value,
      empty: field(form, "empty").checked,
    });
  }

  function restore() {
    for (const [id, draft] of drafts) {
      const form = formOf(id);
      if (!form) {
        drafts.delete(id); // done or cancelled meanwhile
        continue;
      }
      while (lines(form).length < draft.lines.length) addLine(form);
      lines(form).forEach((line, i) => {
        const typed = draft.lines[i] || { sku: "", qty: "" };
        field(line, "sku").value = typed.sku;
        field(line, "qty").value = typed.qty;
      });
      field(form, "note").value = draft.note;
      field(form, "empty").checked = draft.empty;
    }
  }

  // What is wrong with a GTIN-shaped SKU's check digit (as the server says it), or "".
  function gtinProblem(sku) {
    if (!/^[0-9]+$/.test(sku) || ![8, 12, 13, 14].includes(sku.length)) return "";
    let total = 0;
    for (let i = sku.length - 2, weight = 3; i >= 0; i--, weight = 4 - weight) total += Number(sku[i]) * weight;
    const expected = String((10 - (total % 10)) % 10);
    const given = sku[sku.length - 1];
    return given === expected ? "" : "GTIN " + sku + " has check digit " + given + ", expected " + expected;
  }

  // The lines to send, or the problems that keep them from going (each naming its line).
  function collect(form) {
    const items = [];
    const numbers = []; // items[k] is the form's line numbers[k]
    const problems = [];
    lines(form).forEach((line, i) => {
      const sku = field(line, "sku").value.trim();
      const input = field(line, "qty");
      const raw = input.value.trim();
      if (!sku && !raw && !input.validity.badInput) return;
      const qty = raw === "" ? NaN : Number(raw);
      const max = Number(input.max);
      if (!sku) problems.push("Line " + (i + 1) + ": enter the SKU.");
      const gtin = gtinProblem(sku);
      if (gtin) problems.push("Line " + (i + 1) + ", SKU: " + gtin + ".");
      if (!Number.isInteger(qty) || qty < 0 || qty > max)
        problems.push("Line " + (i + 1) + ": the quantity must be a whole number from 0 to " + max + ".");
      items.push({ sku, qty });
      numbers.push(i + 1);
    });
    const empty = field(form, "empty").checked;
    if (empty && items.length) problems.push("Untick “Nothing is at this location” or clear the lines.");
    if (!empty && !items.length && !problems.length)
      problems.push("Enter at least one SKU and its quantity, or tick “Nothing is at this location”.");
    return { items, numbers, problems };
  }

  function explain(answer, numbers) {
    const detail = answer.data && answer.data.detail;
    if (!Array.isArray(detail)) return api().detail(answer);
    return detail
      .map((e) => {
        const loc = e.loc || [];
        if (loc[1] === "items" && typeof loc[2] === "number") {
          const what = loc[3] === "qty" ? "quantity" : loc[3] === "sku" ? "SKU" : "line";
          return "Line " + (numbers[loc[2]] || loc[2] + 1) + ", " + what + ": " + e.msg;
        }
        return (loc.length > 1 ? loc.slice(1).join(".") + ": " : "") + e.msg;
      })
      .join(" ");
  }

  function show(form, text, ok) {
    const result = form.querySelector("[data-result]");
    result.textContent = text;
    result.setAttribute("role", ok ? "status" : "alert");
  }

  async function submit(form) {
    const { items, numbers, problems } = collect(form);
    if (problems.length) {
      show(form, problems.join(" "), false);
      return;
    }
    const id = form.dataset.taskCount;
    const buttons = form.querySelectorAll("button");
    buttons.forEach((b) => (b.disabled = true));
    try {
      const answer = await api().api("POST", "/tasks/" + id + "/count", { items, note: field(form, "note").value });
      if (!answer.ok) {
        show(form, explain(answer, numbers), false);
        return;
      }
      drafts.delete(id);
      const where = form.closest("[data-task]").querySelector("h3").firstChild.textContent.trim();
      show(form, "Count sent.", true);
      api().status("Count of " + where + " sent.");
      if (document.activeElement) document.activeElement.blur();
      await api().refresh();
    } catch (e) {
      show(form, "The reconciler did not answer: " + e, false);
    } finally {
      buttons.forEach((b) => (b.disabled = false));
    }
  }

  // -- the barcode scanner: an overlay outside <main>, so a live reload does not end it ----

  let scanner = null;

  function closeScanner(value) {
    if (!scanner) return;
    const { overlay, stream, id, index } = scanner;
    scanner = null;
    if (stream) stream.getTracks().forEach((track) => track.stop());
    overlay.remove();
    const form = formOf(id);
    const line = form && lines(form)[index];
    if (!line) return;
    if (value) {
      field(line, "sku").value = value;
      save(form);
      field(line, "qty").focus();
    } else {
      line.querySelector("[data-scan]").focus();
    }
  }

  async function detectLoop(detector, video, session) {
    while (scanner === session) {
      try {
        const found = await detector.detect(video);
        if (found.length && scanner === session) {
          closeScanner(found[0].rawValue);
          return;
        }
      } catch (e) {
        // a frame that is not ready yet: try the next one
      }
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
  }

  async function openScanner(button) {
    if (scanner) return;
    const form = button.closest("form");
    const overlay = document.createElement("div");
    overlay.className = "scanner";
    overlay.setAttribute("role", "dialog");
    overlay.setAttribute("aria-label", "Scan barcode");
    const video = document.createElement("video");
    video.muted = true;
    video.setAttribute("playsinline", "");
    const hint = document.createElement("p");
    hint.textContent = "Point the camera at the barcode.";
    const stop = document.createElement("button");
    stop.type = "button";
    stop.className = "touch";
    stop.textContent = "Stop scanning";
    stop.addEventListener("click", () => closeScanner(null));
    overlay.append(video, hint, stop);
    document.body.append(overlay);
    const session = { overlay, stream: null, id: form.dataset.taskCount, index: lines(form).indexOf(button.closest("[data-line]")) };
    scanner = session;
    stop.focus();
    try {
      const stream = await navigator.mediaDevices.getUserMedia({ video: { facingMode: "environment" }, audio: false });
      if (scanner !== session) {
        stream.getTracks().forEach((track) => track.stop()); // stopped while the camera started
        return;
      }
      session.stream = stream;
      video.srcObject = session.stream;
      await video.play();
      const formats = BarcodeDetector.getSupportedFormats ? await BarcodeDetector.getSupportedFormats() : [];
      const detector = formats.length ? new BarcodeDetector({ formats }) : new BarcodeDetector();
      await detectLoop(detector, video, session);
    } catch (e) {
      if (scanner === session) hint.textContent = "The camera cannot be used here (" + (e && e.name ? e.name : e) + "). Type the SKU instead.";
    }
  }

  // -- events (delegated: <main>'s content is swapped by live reloads) ----------------------

  document.addEventListener("click", (event) => {
    const target = event.target instanceof Element ? event.target : null;
    if (!target) return;
    const add = target.closest("[data-add-line]");
    if (add) {
      const form = add.closest("form");
      const line = addLine(form);
      save(form);
      field(line, "sku").focus();
      return;
    }
    const remove = target.closest("[data-remove-line]");
    if (remove) {
      const form = remove.closest("form");
      remove.closest("[data-line]").remove();
      save(form);
      return;
    }
    const scan = target.closest("[data-scan]");
    if (scan) openScanner(scan);
  });

  const edited = (event) => {
    const form = event.target instanceof Element ? event.target.closest("form[data-task-count]") : null;
    if (form) save(form);
  };
  document.addEventListener("input", edited);
  document.addEventListener("change", edited);

  document.addEventListener("keydown", (event) => {
    if (event.key === "Escape" && scanner) {
      closeScanner(null);
      return;
    }
    // A barcode reader that types the SKU ends with Enter: go on to the quantity, not submit.
    const target = event.target;
    if (event.key === "Enter" && target instanceof HTMLInputElement && target.name === "sku" && target.closest("form[data-task-count]")) {
      event.preventDefault();
      field(target.closest("[data-line]"), "qty").focus();
    }
  });

  document.addEventListener("submit", (event) => {
    const form = event.target;
    if (!(form instanceof HTMLFormElement) || !form.dataset.taskCount) return;
    event.preventDefault();
    submit(form);
  });

  document.addEventListener("console:updated", () => {
    prepare(document);
    restore();
  });
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", () => prepare(document));
  else prepare(document);
})();
