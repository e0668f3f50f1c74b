// One campaign: its figures and five charts, drawn by plotly.js from /api/campaigns/<rule>
// and redrawn on every refresh (Plotly.react keeps zoom and hidden series).
"use strict";

(() => {
  const K = Kairos;
  const section = document.getElementById("campaign");
  if (!section || !window.Plotly) return;
  const ruleId = section.dataset.ruleId;
  const colours = { sms: "#3182ce", push: "#38a169", rm: "#d69e2e" };
  const layout = (extra) => ({
    margin: { l: 60, r: 20, t: 10, b: 50 },
    font: { size: 12 },
    legend: { orientation: "h", y: -0.25 },
    paper_bgcolor: "rgba(0,0,0,0)",
    ...extra,
  });
  const draw = (id, traces, extra) => {
    const node = document.getElementById(id);
    window.Plotly.react(node, traces, layout(extra), K.plotConfig);
    node.dataset.drawn = String(Number(node.dataset.drawn || 0) + 1);
  };

  function contactsPerDay(days) {
    const channels = [...new Set(days.map((d) => d.channel))].sort();
    const span = new Set(days.map((d) => d.day)).size;
    const traces = channels.map((channel) => {
      const mine = days.filter((d) => d.channel === channel);
      return { type: "bar", name: channel.toUpperCase(), x: mine.map((d) => d.day), y: mine.map((d) => d.contacts), marker: { color: colours[channel] } };
    });
    draw("chart-contacts-per-day", traces, {
      barmode: "stack",
      // One tick a day while they fit; plotly's own (round) spacing beyond.
      xaxis: { title: { text: "day (UTC)" }, type: "date", tickformat: "%d %b", ...(span <= 16 ? { dtick: 86400000 } : {}) },
      yaxis: { title: { text: "contacts" }, rangemode: "tozero" },
    });
  }

  function funnel(row) {
    const stages = ["Fired", "Sent", "Delivered", "Engaged", "Converted"];
    const values = [row.fired, row.sent, row.delivered, row.engaged, row.treated_conversions];
    draw(
      "chart-funnel",
      [{ type: "funnel", y: stages, x: values, textinfo: "value+percent initial", marker: { color: "#2b6cb0" } }],
      { margin: { l: 90, r: 20, t: 10, b: 30 } },
    );
  }

  function suppressions(byReason) {
    const entries = Object.entries(byReason || {}).sort((a, b) => a[1] - b[1]);
    draw(
      "chart-suppressions",
      [{ type: "bar", orientation: "h", y: entries.map((e) => e[0]), x: entries.map((e) => e[1]), marker: { color: "#c53030" } }],
      {
        margin: { l: 140, r: 20, t: 10, b: 50 },
        xaxis: { title: { text: "decisions suppressed" }, rangemode: "tozero" },
        annotations: entries.length ? [] : [{ text: "none suppressed", showarrow: false, xref: "paper", yref: "paper", x: 0.5, y: 0.5 }],
      },
    );
  }

  function localHour(hours) {
    const xs = [...Array(24).keys()];
    draw(
      "chart-local-hour",
      [{ type: "bar", x: xs, y: xs.map((h) => (hours || {})[h] || 0), marker: { color: "#805ad5" } }],
      {
        xaxis: { title: { text: "customer's local hour" }, dtick: 2, range: [-0.5, 23.5] },
        yaxis: { title: { text: "contacts" }, rangemode: "tozero" },
      },
    );
  }

  function uplift(row) {
    const rate = (v) => (v === null || v === undefined ? null : v * 100);
    const traces = [
      {
        type: "bar", name: "conversion rate", x: ["treated", "holdout"],
        y: [rate(row.treated_rate), rate(row.holdout_rate)],
        text: [K.pct(row.treated_rate), K.pct(row.holdout_rate)], textposition: "outside",
        marker: { color: ["#2b6cb0", "#a0aec0"] },
      },
    ];
    if (row.uplift !== null && row.uplift !== undefined) {
      const [low, high] = row.uplift_ci95 || [row.uplift, row.uplift];
      traces.push({
        type: "scatter", mode: "markers", name: "uplift (95 % CI)", x: ["uplift"], y: [rate(row.uplift)],
        marker: { size: 12, color: "#2f855a" },
        error_y: { type: "data", symmetric: false, array: [rate(high - row.uplift)], arrayminus: [rate(row.uplift - low)], thickness: 2, width: 10 },
        text: [`${K.points(row.uplift)} ${K.interval(row.uplift_ci95)}`], hoverinfo: "text",
      });
    }
    draw("chart-uplift", traces, {
      yaxis: { title: { text: "% (uplift: percentage points)" }, zeroline: true, zerolinewidth: 2 },
      xaxis: { type: "category", categoryorder: "array", categoryarray: ["treated", "holdout", "uplift"] },
      showlegend: true,
    });
  }

  function figures(row) {
    K.setText("fired", K.number(row.fired), section);
    K.setText("sent", K.number(row.sent), section);
    K.setText("suppressed", K.number(K.sum(row.suppressed_by_reason)), section);
    K.setText("held-out", K.number(row.held_out), section);
    K.setText("deferred", K.number(row.deferred), section);
    const withSmall = (testid, main, small) => {
      for (const node of section.querySelectorAll(`[data-testid="${testid}"]`)) {
        node.replaceChildren(`${main} `, K.el("small", testid === "uplift" ? { testid: "uplift-ci" } : {}, small));
      }
    };
    withSmall("delivered", K.number(row.delivered), K.pct(row.delivered_rate));
    withSmall("engaged", K.number(row.engaged), K.pct(row.engaged_rate));
    withSmall("treated-rate", K.pct(row.treated_rate), `${K.number(row.treated_conversions)} converted`);
    withSmall("holdout-rate", K.pct(row.holdout_rate), `${K.number(row.holdout_conversions)} converted`);
    withSmall("uplift", K.points(row.uplift), K.interval(row.uplift_ci95));
  }

  K.every(async () => {
    const data = await K.getJSON(`/api/campaigns/${encodeURIComponent(ruleId)}`);
    K.updateStatus(data.as_of, data.status);
    const detail = data.detail;
    figures(detail.row);
    contactsPerDay(detail.contacts_per_day || []);
    funnel(detail.row);
    suppressions(detail.row.suppressed_by_reason);
    localHour(detail.local_hour);
    uplift(detail.row);
  });
})();
