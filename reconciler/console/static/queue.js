// edgecount console, Discrepancies page: the decision form, bulk approval, keyboard shortcuts.
// * Approve / Reject (a row's buttons, or a / r on the current row) open the decision form;
//   Confirm sends POST /discrepancies/{id}/approve|reject, "Approve selected" sends
//   POST /discrepancies/approve with the checked rows. The server decides what is allowed
//   (role, approval limit, decided once); its refusal is shown in the form (role="alert").
// * j / k move the current row, x checks it, ? lists the keys; no key counts while typing.
// * The page's <main> is replaced by live refreshes, so the dialogs are moved out of it once
//   (a refresh does not send them again) and the selection and current row are kept here
//   and put back after each refresh (console:updated).
"use strict";
(function () {
  const kept = { current: null, index: -1, selected: new Set(), outcome: null };
  const byId = (id) => document.getElementById(id);
  const rows = () => Array.from(document.querySelectorAll("#queue-table tbody tr[data-id]"));
  const rowOf = (id) => rows().find((row) => row.dataset.id === id) || null;
  const api = (...args) => window.edgecount.api(...args);
  const detail = (answer) => window.edgecount.detail(answer);
  const DONE = { approve: "approved", reject: "rejected" };

  // -- what the page says ---------------------------------------------------------------

  function showOutcome() {
    const el = byId("queue-outcome");
    if (!el || !kept.outcome) return;
    el.textContent = kept.outcome.text;
    el.setAttribute("role", kept.outcome.bad ? "alert" : "status");
  }

  function outcome(text, bad) {
    kept.outcome = { text, bad: !!bad };
    showOutcome();
  }

  function formSays(text, bad) {
    const el = byId("q-decide-result");
    if (!el) return;
    el.textContent = text;
    if (text) el.setAttribute("role", bad ? "alert" : "status");
    else el.removeAttribute("role");
  }

  // -- the current row and the selection ----------------------------------------------

  function mark() {
    for (const row of rows()) {
      const current = row.dataset.id === kept.current;
      row.classList.toggle("current", current);
      if (current) row.setAttribute("aria-current", "true");
      else row.removeAttribute("aria-current");
    }
  }

  function selectedIds() {
    return Array.from(kept.selected).filter((id) => rowOf(id) !== null);
  }

  function showSelection() {
    const ids = selectedIds();
    const button = byId("q-approve-selected");
    if (button) button.disabled = ids.length === 0;
    const count = byId("q-selected");
    if (count) count.textContent = ids.length ? ids.length + " selected" : "None selected";
  }

  function setCurrent(row, focus) {
    kept.current = row ? row.dataset.id : null;
    kept.index = row ? rows().indexOf(row) : -1;
    mark();
    if (row && focus) {
      row.focus({ preventScroll: true });
      row.scrollIntoView({ block: "nearest" });
    }
  }

  function move(step) {
    const all = rows();
    if (!all.length) return;
    const at = all.findIndex((row) => row.dataset.id === kept.current);
    const next = at < 0 ? (step > 0 ? 0 : all.length - 1) : Math.min(all.length - 1, Math.max(0, at + step));
    setCurrent(all[next], true);
  }

  function toggle() {
    const row = rowOf(kept.current);
    const box = row && row.querySelector(".q-pick");
    if (!box) {
      if (row) outcome(row.dataset.location + " cannot be selected: it is not awaiting approval, or you may not decide.", true);
      return;
    }
    box.checked = !box.checked;
    box.dispatchEvent(new Event("change", { bubbles: true }));
  }

  // After a live refresh: the same selection, the same current row (or the one now in its place).
  function restore() {
    const present = new Set(rows().map((row) => row.dataset.id));
    for (const id of Array.from(kept.selected)) {
      const row = rowOf(id);
      if (!present.has(id) || !row.querySelector(".q-pick")) kept.selected.delete(id);
    }
    for (const box of document.querySelectorAll(".q-pick")) box.checked = kept.selected.has(box.value);
    if (kept.current !== null && !present.has(kept.current)) {
      const all = rows();
      const row = all.length && kept.index >= 0 ? all[Math.min(kept.index, all.length - 1)] : null;
      kept.current = row ? row.dataset.id : null;
    }
    mark();
    showSelection();
    showOutcome();
    const row = rowOf(kept.current);
    if (row && (document.activeElement === document.body || !document.activeElement) && !openDialog())
      row.focus({ preventScroll: true });
  }

  // -- the dialogs -----------------------------------------------------------------------

  function adopt() {
    for (const id of ["q-decide", "q-shortcuts"]) {
      const dialog = byId(id);
      if (dialog && dialog.closest("main")) document.body.appendChild(dialog);
    }
  }

  function openDialog() {
    return document.querySelector("dialog[open]");
  }

  function linesOf(row) {
    const items = row.querySelectorAll(".queue-lines li");
    return Array.from(items, (li) => li.textContent.trim()).join("; ");
  }

  function openDecision(kind, ids) {
    const dialog = byId("q-decide");
    const form = byId("q-decide-form");
    if (!dialog || !form || !ids.length) return;
    form.reset();
    formSays("", false);
    form.querySelector('button[type="submit"]').disabled = false;
    dialog.dataset.kind = kind;
    dialog.dataset.ids = ids.join(",");
    const found = ids.map(rowOf).filter(Boolean);
    const names = found.map((row) => row.dataset.location);
    let title;
    let what;
    if (kind === "bulk") {
      title = "Approve " + ids.length + " selected";
      what = names.join(", ");
      dialog.dataset.names = names.join(",");
    } else {
      const row = found[0];
      title = (kind === "approve" ? "Approve " : "Reject ") + row.dataset.location;
      const limit = row.querySelector(".limit-note");
      what = "Value " + row.dataset.value + (limit ? " (" + limit.textContent + ")" : "") + " · " + linesOf(row);
      dialog.dataset.names = row.dataset.location;
    }
    byId("q-decide-title").textContent = title;
    byId("q-decide-what").textContent = what;
    dialog.showModal();
    byId("q-reason").focus();
  }

  function decideCurrent(kind) {
    const row = rowOf(kept.current);
    if (!row) {
      outcome("Choose a discrepancy first (j / k move between them).", true);
      return;
    }
    const button = row.querySelector('[data-decide="' + kind + '"]');
    if (!button) {
      const why = document.querySelector("[data-decide]")
        ? " is not awaiting approval."
        : ": only approvers and admins decide discrepancies.";
      outcome(row.dataset.location + why, true);
      return;
    }
    openDecision(kind, [row.dataset.id]);
  }

  function closeDialog(dialog) {
    if (dialog && dialog.open) dialog.close();
  }

  // -- sending a decision ----------------------------------------------------------------

  function summary(results) {
    const n = { approved: 0, conflict: 0, forbidden: 0, not_found: 0 };
    for (const item of results) n[item.result] = (n[item.result] || 0) + 1;
    const parts = [n.approved + " approved"];
    if (n.conflict) parts.push(n.conflict + " already decided");
    if (n.forbidden) parts.push(n.forbidden + " above your limit");
    if (n.not_found) parts.push(n.not_found + " not found");
    return { text: parts.join(", "), bad: n.approved !== results.length };
  }

  async function alreadyDecided(id, answer) {
    const now = await api("GET", "/discrepancies/" + id);
    const d = now.ok && now.data ? now.data.decision : null;
    if (!d) return "Already decided elsewhere: " + detail(answer);
    return "Already decided: " + d.outcome + " by " + d.by + " (" + d.reason + "). Nothing was applied again.";
  }

  async function sendOne(dialog, body, confirm) {
    const kind = dialog.dataset.kind;
    const id = dialog.dataset.ids;
    const answer = await api("POST", "/discrepancies/" + id + "/" + kind, body);
    if (answer.ok) {
      closeDialog(dialog);
      kept.selected.delete(id);
      outcome(dialog.dataset.names + " " + DONE[kind] + " (" + body.reason_code + ").", false);
      await window.edgecount.refresh();
      return;
    }
    if (answer.status === 409) {
      confirm.disabled = true;
      formSays(await alreadyDecided(id, answer), true);
      await window.edgecount.refresh();
      return;
    }
    confirm.disabled = answer.status === 403 || answer.status === 404;
    formSays(detail(answer), true);
  }

  async function sendMany(dialog, body, confirm) {
    const ids = dialog.dataset.ids.split(",").map(Number);
    const answer = await api("POST", "/discrepancies/approve", Object.assign({ ids }, body));
    if (!answer.ok) {
      confirm.disabled = answer.status === 403;
      formSays(detail(answer), true);
      return;
    }
    closeDialog(dialog);
    kept.selected.clear();
    const said = summary(answer.data.results);
    outcome(said.text + ".", said.bad);
    await window.edgecount.refresh();
  }

  async function submit(form) {
    const dialog = byId("q-decide");
    const confirm = form.querySelector('button[type="submit"]');
    const reason = form.elements.reason_code.value;
    if (!reason) {
      formSays("Reason: choose a reason code.", true);
      form.elements.reason_code.focus();
      return;
    }
    const body = { reason_code: reason, note: form.elements.note.value };
    confirm.disabled = true;
    formSays("Sending…", false);
    try {
      if (dialog.dataset.kind === "bulk") await sendMany(dialog, body, confirm);
      else await sendOne(dialog, body, confirm);
    } catch (e) {
      formSays("The reconciler did not answer: " + e, true);
      confirm.disabled = false;
    }
  }

  // -- events ----------------------------------------------------------------------------

  document.addEventListener("submit", (event) => {
    const form = event.target;
    if (!(form instanceof HTMLFormElement) || form.id !== "q-decide-form") return;
    event.preventDefault();
    submit(form);
  });

  document.addEventListener("click", (event) => {
    const target = event.target instanceof Element ? event.target : null;
    if (!target) return;
    const decide = target.closest("[data-decide]");
    if (decide) {
      const row = decide.closest("tr[data-id]");
      setCurrent(row, false);
      openDecision(decide.dataset.decide, [row.dataset.id]);
      return;
    }
    if (target.closest("[data-bulk]")) {
      openDecision("bulk", selectedIds());
      return;
    }
    if (target.closest("[data-shortcuts]")) {
      byId("q-shortcuts").showModal();
      return;
    }
    const close = target.closest("[data-close]");
    if (close) {
      closeDialog(close.closest("dialog"));
      return;
    }
    const row = target.closest("#queue-table tbody tr[data-id]");
    if (row && !target.closest("a, button, input")) setCurrent(row, false);
  });

  document.addEventListener("change", (event) => {
    const box = event.target;
    if (!(box instanceof HTMLInputElement) || !box.classList.contains("q-pick")) return;
    if (box.checked) kept.selected.add(box.value);
    else kept.selected.delete(box.value);
    showSelection();
  });

  const TYPING = "textarea, select, [contenteditable], input:not([type=checkbox]):not([type=radio]):not([type=button]):not([type=submit])";

  document.addEventListener("keydown", (event) => {
    if (event.defaultPrevented || event.ctrlKey || event.metaKey || event.altKey) return;
    if (openDialog()) return; // its own keys; Escape closes it
    const target = event.target instanceof Element ? event.target : null;
    if (target && target.closest(TYPING)) return;
    const act = {
      j: () => move(1),
      k: () => move(-1),
      x: toggle,
      a: () => decideCurrent("approve"),
      r: () => decideCurrent("reject"),
      "?": () => byId("q-shortcuts") && byId("q-shortcuts").showModal(),
    }[event.key];
    if (!act || !byId("q-shortcuts")) return;
    event.preventDefault();
    act();
  });

  document.addEventListener("console:updated", restore);

  function start() {
    adopt();
    restore();
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
