// The campaigns page: every rule's numbers over the chosen window, refreshed from
// /api/campaigns, sortable by any column, with a sparkline of sends per day.
"use strict";

(() => {
  const K = Kairos;
  const table = document.getElementById("campaigns-table");
  if (!table) return;
  const windowName = table.dataset.window;
  const channels = [...table.querySelectorAll('th[data-sort^="sent-"]')].map((th) => th.dataset.sort.slice(5));
  const body = document.getElementById("campaigns-body");
  const columns = table.tHead.rows[0].cells.length;

  function cell(testid, value, ...children) {
    return K.el("td", { testid, value }, ...children);
  }

  function row(r) {
    const suppressed = K.sum(r.suppressed_by_reason);
    const link = K.el("a", { href: `/campaigns/${encodeURIComponent(r.rule_id)}`, testid: "campaign-link" }, r.rule_id);
    const wave = r.wave ? K.el("span", { className: "wave" }, ` wave ${r.wave} of ${r.campaign}`) : null;
    const spark = K.el("div", { className: "sparkline", testid: "sparkline", "data-trend": (r.trend || []).join(",") });
    const reasons = suppressed ? K.el("small", { testid: "suppressed-reasons" }, K.breakdown(r.suppressed_by_reason)) : null;
    const tr = K.el(
      "tr",
      { testid: "campaign-row", "data-rule-id": r.rule_id },
      cell("rule", r.rule_id, link, wave),
      cell("fired", r.fired, K.number(r.fired)),
      cell("sent", r.sent, K.number(r.sent)),
      channels.map((c) => cell(`sent-${c}`, (r.sent_by_channel || {})[c] || 0, K.number((r.sent_by_channel || {})[c] || 0))),
      cell("suppressed", suppressed, K.number(suppressed), reasons),
      cell("held-out", r.held_out, K.number(r.held_out)),
      cell("delivered", r.delivered_rate ?? -1, `${K.number(r.delivered)} `, K.el("small", {}, K.pct(r.delivered_rate))),
      cell("engaged", r.engaged_rate ?? -1, `${K.number(r.engaged)} `, K.el("small", {}, K.pct(r.engaged_rate))),
      cell("converted", r.treated_conversions, `${K.number(r.treated_conversions)} / ${K.number(r.holdout_conversions)}`),
      cell("uplift", r.uplift ?? -999, `${K.points(r.uplift)} `, K.el("small", { testid: "uplift-ci" }, K.interval(r.uplift_ci95))),
      K.el("td", { testid: "trend", className: "trend" }, spark),
    );
    tr.querySelector('[data-testid="suppressed"]').title = K.breakdown(r.suppressed_by_reason);
    return tr;
  }

  function drawSparklines() {
    for (const node of body.querySelectorAll(".sparkline")) {
      const trend = node.dataset.trend ? node.dataset.trend.split(",") : [];
      K.sparkline(node, trend);
    }
  }

  const resort = K.sortable(table);
  drawSparklines();

  K.every(async () => {
    const data = await K.getJSON(`/api/campaigns?window=${encodeURIComponent(windowName)}`);
    K.updateStatus(data.as_of, data.status);
    const rows = data.rows.map(row);
    if (!rows.length) {
      rows.push(K.el("tr", { testid: "campaigns-empty" }, K.el("td", { colspan: columns }, "No decisions in this window yet.")));
    }
    body.replaceChildren(...rows);
    resort();
    drawSparklines();
  }, { now: false });
})();
