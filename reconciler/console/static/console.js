// edgecount console: the one shared script (ours; no framework, no CDN).
// * window.edgecount.api(method, url, body): JSON to the REST API with the CSRF token;
//   window.edgecount.status(text): the answer to what a person did (kept 10 s over live updates).
// * <form data-api="/path" [data-method="POST"]>: sent as JSON by api(); the answer's detail
//   goes to the form's [data-result] element; on success the page's live part reloads.
// * <main data-live="topics">: reloads its content when the server says those topics changed
//   (server-sent events from /console/events), but never under a person's typing.
"use strict";
(function () {
  const main = () => document.getElementById("main");
  const status = (text) => {
    const el = document.getElementById("live-status");
    if (el) el.textContent = text;
  };
  const csrf = () => {
    const meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.content : "";
  };

  async function api(method, url, body) {
    const init = { method, headers: { Accept: "application/json", "X-CSRF-Token": csrf() }, credentials: "same-origin" };
    if (body !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    const answer = await fetch(url, init);
    let data = null;
    const type = answer.headers.get("content-type") || "";
    if (type.includes("json")) data = await answer.json();
    return { ok: answer.ok, status: answer.status, data };
  }

  function detail(result) {
    const d = result.data && result.data.detail;
    if (typeof d === "string") return d;
    if (Array.isArray(d)) return d.map((e) => (e.loc ? e.loc.slice(1).join(".") + ": " : "") + e.msg).join("; ");
    return "HTTP " + result.status;
  }

  let pending = false;
  let loading = false;
  let keepStatusUntil = 0;
  const KEEP_ANSWER_MS = 10000;
  function typing() {
    const el = document.activeElement;
    const area = main();
    // typing: a text field, a list or an area; a focused checkbox or button is not typing
    const field = "textarea, select, input:not([type=checkbox]):not([type=radio]):not([type=button]):not([type=submit]):not([type=reset]):not([type=file])";
    return !!(el && area && area.contains(el) && el.matches(field));
  }

  async function refresh() {
    const area = main();
    if (!area) return;
    if (typing() || loading) {
      pending = true;
      return;
    }
    loading = true;
    pending = false;
    const editsBefore = edits;
    try {
      const answer = await fetch(window.location.href, {
        headers: { "X-Console-Fragment": "1", Accept: "text/html" },
        credentials: "same-origin",
      });
      if (answer.status === 401) {
        window.location.assign("/signin?next=" + encodeURIComponent(window.location.pathname + window.location.search));
        return;
      }
      if (answer.ok) {
        const html = await answer.text();
        // the person started typing while the fragment was on its way: their text wins, the
        // update waits until they leave the field
        if (typing() || edits !== editsBefore) {
          pending = true;
          return;
        }
        area.innerHTML = html;
        // a form's answer stays readable for a while before live updates replace it
        if (Date.now() >= keepStatusUntil) status("Updated " + new Date().toLocaleTimeString());
        document.dispatchEvent(new CustomEvent("console:updated"));
      }
    } finally {
      loading = false;
      if (pending && !typing()) setTimeout(refresh, 250);
    }
  }

  // what a person types in the live part; an update held back for it runs when they leave the field
  let edits = 0;
  document.addEventListener("input", (event) => {
    const area = main();
    if (area && area.contains(event.target)) edits += 1;
  });
  document.addEventListener("focusout", () => {
    // activeElement moves after focusout: look once the focus has landed
    setTimeout(() => {
      if (pending && !loading && !typing()) refresh();
    }, 0);
  });

  function listen() {
    const area = main();
    if (!area || !area.dataset.live || !window.EventSource) return;
    const wanted = new Set(area.dataset.live.split(/\s+/).filter(Boolean));
    const source = new EventSource("/console/events");
    source.addEventListener("change", (event) => {
      let topics = [];
      try {
        topics = JSON.parse(event.data).topics || [];
      } catch (e) {
        return;
      }
      if (topics.some((t) => wanted.has(t))) refresh();
    });
    source.addEventListener("open", () => status("Live"));
    source.addEventListener("error", () => status("Reconnecting…"));
    window.addEventListener("pagehide", () => source.close());
  }

  function formBody(form) {
    const body = {};
    for (const el of form.elements) {
      if (!el.name || el.disabled || el.type === "submit" || el.type === "button") continue;
      if ((el.type === "checkbox" || el.type === "radio") && !el.checked) continue;
      let value = el.value;
      if (el.type === "number" && value !== "") value = Number(value);
      if (el.dataset.type === "int" && value !== "") value = Number.parseInt(value, 10);
      body[el.name] = value;
    }
    return body;
  }

  document.addEventListener("submit", async (event) => {
    const form = event.target;
    if (!(form instanceof HTMLFormElement) || !form.dataset.api) return;
    event.preventDefault();
    const result = form.querySelector("[data-result]");
    const buttons = form.querySelectorAll("button");
    buttons.forEach((b) => (b.disabled = true));
    try {
      const answer = await api(form.dataset.method || "POST", form.dataset.api, formBody(form));
      const text = answer.ok ? form.dataset.done || "Done." : detail(answer);
      if (result) {
        result.textContent = text;
        result.setAttribute("role", answer.ok ? "status" : "alert");
      }
      form.dispatchEvent(new CustomEvent("console:answer", { detail: answer, bubbles: true }));
      if (answer.ok) {
        announce(text);
        if (form.dataset.reset !== undefined) form.reset();
        if (document.activeElement) document.activeElement.blur();
        await refresh();
      }
    } catch (e) {
      if (result) {
        result.textContent = "The reconciler did not answer: " + e;
        result.setAttribute("role", "alert");
      }
    } finally {
      buttons.forEach((b) => (b.disabled = false));
    }
  });

  // the answer to something a person did: live updates leave it readable for a while
  function announce(text) {
    status(text);
    keepStatusUntil = Date.now() + KEEP_ANSWER_MS;
  }

  window.edgecount = { api, detail, refresh, status: announce };
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", listen);
  else listen();
})();
