// The deploys page: the live version, stored versions and the pointer's history, refreshed
// from /api/deploys. Rollback buttons post to the confirmation step (with the CSRF token);
// the comparison form is a plain GET the server renders.
"use strict";

(() => {
  const K = Kairos;
  const versionsBody = document.getElementById("versions-body");
  const historyBody = document.getElementById("history-body");
  if (!versionsBody || !historyBody) return;

  function rollbackForm(version) {
    return K.el(
      "form",
      { method: "post", action: "/deploys/rollback", testid: "rollback-form" },
      K.el("input", { type: "hidden", name: "csrf", value: K.csrf() }),
      K.el("input", { type: "hidden", name: "to", value: version }),
      K.el("button", { type: "submit", testid: "rollback-to" }, "Roll back to this…"),
    );
  }

  function versionRow(v, live) {
    const tr = K.el(
      "tr",
      { testid: "version-row", "data-version": v.version, className: v.live ? "is-live" : null },
      K.el("td", { testid: "version" }, v.version, v.live ? " " : null, v.live ? K.el("span", { className: "badge", testid: "live-badge" }, "live") : null),
      K.el("td", { testid: "deployed-at" }, K.when(v.deployed_at)),
      K.el("td", { testid: "deployed-by" }, v.deployed_by),
      K.el("td", { testid: "comment" }, v.comment),
      K.el("td", { testid: "overrides" }, (v.overrides || []).join("; ")),
      K.el("td", { testid: "rules" }, v.rules),
      K.el("td", {}, !v.live && live ? rollbackForm(v.version) : null),
    );
    // el() sets attributes; an input's value attribute is its default value, as wanted.
    return tr;
  }

  function historyRow(h) {
    return K.el(
      "tr",
      { testid: "history-row", "data-version": h.version },
      K.el("td", { testid: "history-at" }, K.when(h.at)),
      K.el("td", { testid: "history-action" }, h.action),
      K.el("td", { testid: "history-version" }, h.version),
      K.el("td", { testid: "history-previous" }, h.previous_version || "—"),
      K.el("td", { testid: "history-by" }, h.by),
      K.el("td", { testid: "history-comment" }, h.comment),
      K.el("td", { testid: "history-overrides" }, (h.overrides || []).join("; ")),
    );
  }

  K.every(async () => {
    const data = await K.getJSON("/api/deploys");
    const live = document.getElementById("live-version");
    if (live && data.live && live.textContent !== data.live) live.textContent = data.live;
    const versions = data.versions.map((v) => versionRow(v, data.live));
    if (!versions.length) versions.push(K.el("tr", { testid: "versions-empty" }, K.el("td", { colspan: 7 }, "No version stored on the rules topic.")));
    versionsBody.replaceChildren(...versions);
    const moves = data.history.map(historyRow);
    if (!moves.length) moves.push(K.el("tr", { testid: "history-empty" }, K.el("td", { colspan: 7 }, "The live pointer never moved.")));
    historyBody.replaceChildren(...moves);
  }, { now: false });
})();
