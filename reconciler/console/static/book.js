// edgecount console, Book page: preview a book CSV, then apply that same file.
// * <form data-book-import>: "Preview import" sends the file's bytes to POST /book/preview
//   (nothing applied) and shows what would change, or every bad line.
// * "Apply import" sends the very bytes previewed to POST /book; main then reloads.
// A reload of main (the book changed) drops a preview: it no longer says what would change.
"use strict";
(function () {
  let chosen = null; // { bytes, name, query } of the file previewed, until applied
  let note = null; // { text, alert } for [data-book-result], kept across reloads of main

  const csrf = () => {
    const meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.content : "";
  };

  async function post(url, bytes) {
    const answer = await fetch(url, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "text/csv", Accept: "application/json", "X-CSRF-Token": csrf() },
      body: bytes,
    });
    const type = answer.headers.get("content-type") || "";
    const data = type.includes("json") ? await answer.json() : null;
    return { ok: answer.ok, status: answer.status, data };
  }

  function showNote() {
    const el = document.querySelector("[data-book-result]");
    if (!el) return;
    el.textContent = note ? note.text : "";
    el.setAttribute("role", note && note.alert ? "alert" : "status");
  }

  function say(text, alert) {
    note = text ? { text, alert } : null;
    showNote();
  }

  function element(tag, text, attributes) {
    const el = document.createElement(tag);
    if (text !== undefined && text !== null) el.textContent = String(text);
    for (const [key, value] of Object.entries(attributes || {})) el.setAttribute(key, value);
    return el;
  }

  function table(label, head, rows, numeric) {
    const wrap = element("div", null, { class: "table-wrap" });
    const tab = element("table", null, { "aria-label": label });
    const tr = element("tr");
    head.forEach((name, i) => tr.append(element("th", name, { scope: "col", class: numeric.has(i) ? "num" : "" })));
    tab.append(element("thead"));
    tab.tHead.append(tr);
    const body = element("tbody");
    for (const row of rows) {
      const line = element("tr");
      row.forEach((cell, i) => line.append(element("td", cell, { class: numeric.has(i) ? "num" : "" })));
      body.append(line);
    }
    tab.append(body);
    wrap.append(tab);
    return wrap;
  }

  const money = (v) => (v > 0 ? "+" : "") + v.toFixed(2);
  const blank = (v) => (v === null || v === undefined ? "—" : v);

  function showPreview(data, name) {
    const box = document.querySelector("[data-book-preview]");
    if (!box) return;
    box.replaceChildren();
    const h = element("h3", "Preview of " + name);
    box.append(h);
    if (data.problems.length) {
      const n = data.problems.length + data.problems_left_out;
      box.append(element("p", n + (n === 1 ? " bad line" : " bad lines") + ": nothing would be imported.", { role: "alert" }));
      box.append(table("Bad lines", ["Line", "Column", "Problem"], data.problems.map((p) => [p.line, p.column, p.why]), new Set([0])));
      if (data.problems_left_out) box.append(element("p", "… and " + data.problems_left_out + " more.", { class: "muted" }));
      return;
    }
    box.append(
      element(
        "p",
        `${data.records} records in ${data.locations} locations: ${data.added.records} added, ${data.changed.records} changed, ` +
          `${data.removed.records} removed, ${data.unchanged} unchanged; book value ${money(data.net_value)}.`,
        { "data-preview-summary": "" },
      ),
    );
    if (data.ignored_columns.length) box.append(element("p", "Columns ignored: " + data.ignored_columns.join(", "), { class: "muted" }));
    if (data.refused) box.append(element("p", data.refused, { role: "alert" }));
    if (data.lines.length) {
      const rows = data.lines.map((l) => [
        l.change,
        l.location,
        l.sku,
        blank(l.old_qty),
        blank(l.new_qty),
        blank(l.old_unit_cost),
        blank(l.new_unit_cost),
        blank(l.old_abc) + " → " + blank(l.new_abc),
      ]);
      const head = ["Change", "Location", "SKU", "Qty before", "Qty after", "Cost before", "Cost after", "Class"];
      box.append(table("Changes", head, rows, new Set([3, 4, 5, 6])));
      if (data.lines_left_out) box.append(element("p", "… and " + data.lines_left_out + " more changes.", { class: "muted" }));
    }
    if (data.would_apply) box.append(element("button", "Apply import", { type: "button", class: "primary", "data-book-apply": "" }));
  }

  function options(form, name, at) {
    const query = new URLSearchParams({ source: name.slice(0, 256) || "console upload", snapshot_at: at });
    for (const key of ["locations_only", "confirm"]) if (form.elements[key] && form.elements[key].checked) query.set(key, "true");
    return query;
  }

  document.addEventListener("submit", async (event) => {
    const form = event.target;
    if (!(form instanceof HTMLFormElement) || !form.matches("[data-book-import]")) return;
    event.preventDefault();
    const file = form.elements.file.files[0];
    if (!file) return say("Choose a book file first.", true);
    const typed = form.elements.snapshot_at.value;
    const at = typed ? new Date(typed) : new Date();
    if (Number.isNaN(at.getTime())) return say("Snapshot taken at: not a time.", true);
    const button = form.querySelector("button[type=submit]");
    button.disabled = true;
    chosen = null;
    say("Reading " + file.name + "…", false);
    try {
      const bytes = await file.arrayBuffer();
      const query = options(form, file.name, at.toISOString());
      const answer = await post("/book/preview?" + query.toString(), bytes);
      if (!answer.ok) return say(window.edgecount.detail(answer), true);
      say("", false);
      showPreview(answer.data, file.name);
      if (answer.data.would_apply) chosen = { bytes, name: file.name, query };
    } catch (e) {
      say("The reconciler did not answer: " + e, true);
    } finally {
      button.disabled = false;
    }
  });

  document.addEventListener("click", async (event) => {
    const button = event.target instanceof Element ? event.target.closest("[data-book-apply]") : null;
    if (!button || !chosen) return;
    button.disabled = true;
    const { bytes, name, query } = chosen;
    try {
      const answer = await post("/book?" + query.toString(), bytes);
      if (!answer.ok) {
        button.disabled = false;
        return say(window.edgecount.detail(answer), true);
      }
      const d = answer.data;
      chosen = null;
      const records = d.records === 1 ? "1 record" : d.records + " records";
      say(
        `Imported ${records} from ${name}: ${d.added.records} added, ${d.changed.records} changed, ${d.removed.records} removed.`,
        false,
      );
      window.edgecount.status("Book import saved.");
      await window.edgecount.refresh();
    } catch (e) {
      button.disabled = false;
      say("The reconciler did not answer: " + e, true);
    }
  });

  document.addEventListener("change", (event) => {
    if (!(event.target instanceof HTMLInputElement) || !event.target.closest("[data-book-import]")) return;
    chosen = null; // a new file or option: preview again
    say("", false);
    const box = document.querySelector("[data-book-preview]");
    if (box) box.replaceChildren();
  });

  document.addEventListener("console:updated", () => {
    if (chosen) {
      chosen = null;
      say("The book changed since the preview: preview the file again.", true);
      return;
    }
    showNote();
  });
})();
