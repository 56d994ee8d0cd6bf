// edgecount console, Map page: a zone a person folds or unfolds stays so when the map
// refreshes live (the page's main part is replaced) and across reloads in this tab.
"use strict";
(function () {
  const KEY = "edgecount.map.zones";
  function chosen() {
    try {
      return JSON.parse(sessionStorage.getItem(KEY) || "{}");
    } catch (e) {
      return {};
    }
  }
  function restore() {
    const open = chosen();
    for (const zone of document.querySelectorAll("details.zone[data-zone]")) {
      const wanted = open[zone.dataset.zone];
      if (typeof wanted === "boolean" && zone.open !== wanted) zone.open = wanted;
    }
  }
  // "toggle" does not bubble: listen in the capture phase, so swapped-in zones are covered too
  document.addEventListener(
    "toggle",
    (event) => {
      const zone = event.target;
      if (!(zone instanceof HTMLDetailsElement) || !zone.dataset.zone) return;
      const open = chosen();
      open[zone.dataset.zone] = zone.open;
      sessionStorage.setItem(KEY, JSON.stringify(open));
    },
    true,
  );
  document.addEventListener("console:updated", restore);
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", restore);
  else restore();
})();
