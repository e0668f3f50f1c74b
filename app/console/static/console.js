// What every console page shares: number formats (the same as the server's filters in
// app/console/pages.py), JSON fetches, the refresh loop, sortable tables and sparklines.
// No framework, no build step: plain browser JavaScript, charts by the bundled plotly.js.
"use strict";

const Kairos = (() => {
  const refreshMs = Number(document.body.dataset.refreshMs) || 5000;
  const dash = "—";

  const number = (v) => (v === null || v === undefined ? dash : Number(v).toLocaleString("en-US"));
  const pct = (v) => (v === null || v === undefined ? dash : `${(v * 100).toFixed(1)} %`);
  const signed = (x) => `${x >= 0 ? "+" : "-"}${Math.abs(x).toFixed(1)}`;
  const points = (v) => (v === null || v === undefined ? dash : `${signed(v * 100)} pp`);
  const interval = (v) => (!v ? dash : `[${signed(v[0] * 100)}, ${signed(v[1] * 100)}] pp`);
  const when = (iso) => {
    if (!iso) return dash;
    const date = new Date(iso);
    if (Number.isNaN(date.getTime())) return iso;
    return `${date.toISOString().slice(0, 19).replace("T", " ")} UTC`;
  };
  const breakdown = (counts) =>
    Object.entries(counts || {})
      .sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]))
      .map(([name, count]) => `${name} ${number(count)}`)
      .join(" · ");
  const sum = (counts) => Object.values(counts || {}).reduce((a, b) => a + b, 0);

  // An element: el("td", {testid: "fired", value: 3}, "3") — dataset keys become data-*.
  function el(tag, attrs = {}, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs)) {
      if (value === null || value === undefined) continue;
      if (key === "testid") node.dataset.testid = value;
      else if (key === "value") node.dataset.value = value;
      else if (key === "className") node.className = value;
      else if (key.startsWith("data-")) node.setAttribute(key, value);
      else node.setAttribute(key, value);
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined || child === "") continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  async function getJSON(url) {
    const response = await fetch(url, {
      credentials: "same-origin",
      headers: { Accept: "application/json" },
      cache: "no-store",
    });
    if (response.status === 401) {
      window.location.assign("/login");
      throw new Error("signed out");
    }
    if (!response.ok) throw new Error(`${url} answered ${response.status}`);
    return response.json();
  }

  // Run `refresh` now and then every refreshMs after each run ends, saying how it went.
  function every(refresh, { now = true } = {}) {
    const state = document.querySelector('[data-testid="refresh-state"]');
    let count = 0;
    const run = async () => {
      try {
        await refresh();
        count += 1;
        if (state) {
          state.classList.remove("failed");
          state.textContent = `Updated ${new Date().toLocaleTimeString()}; refreshes every ${refreshMs / 1000} s.`;
          state.dataset.refreshes = String(count);
        }
      } catch (error) {
        if (state) {
          state.classList.add("failed");
          state.textContent = `Refresh failed (${error.message}); retrying.`;
        }
      }
      window.setTimeout(run, refreshMs);
    };
    if (now) run();
    else window.setTimeout(run, refreshMs);
  }

  function setText(testid, text, root = document) {
    for (const node of root.querySelectorAll(`[data-testid="${testid}"]`)) node.textContent = text;
  }

  function updateStatus(asOf, status) {
    setText("as-of", when(asOf));
    setText("store-records", number(status.records));
    setText("store-last-record", when(status.last_record_at));
    if (status.lag !== null && status.lag !== undefined) setText("store-lag", number(status.lag));
  }

  // Tables whose headers sort them by the cells' data-value; the order survives refreshes.
  function sortable(table) {
    const sort = { key: null, descending: true };
    const apply = () => {
      if (!sort.key) return;
      const header = table.querySelector(`th[data-sort="${sort.key}"]`);
      const text = header && header.dataset.type === "text";
      const body = table.tBodies[0];
      const rows = [...body.rows].filter((row) => row.querySelector(`[data-testid="${sort.key}"]`));
      const value = (row) => row.querySelector(`[data-testid="${sort.key}"]`).dataset.value;
      rows.sort((a, b) => {
        const order = text ? value(a).localeCompare(value(b)) : Number(value(a)) - Number(value(b));
        return sort.descending ? -order : order;
      });
      body.append(...rows);
      for (const th of table.querySelectorAll("th[data-sort]")) th.removeAttribute("aria-sort");
      if (header) header.setAttribute("aria-sort", sort.descending ? "descending" : "ascending");
    };
    for (const th of table.querySelectorAll("th[data-sort]")) {
      th.addEventListener("click", () => {
        const key = th.dataset.sort;
        sort.descending = sort.key === key ? !sort.descending : th.dataset.type !== "text";
        sort.key = key;
        apply();
      });
    }
    return apply;
  }

  const plotConfig = { displaylogo: false, responsive: true, displayModeBar: false };

  function sparkline(node, values) {
    if (!window.Plotly) return;
    const ys = values.map(Number);
    window.Plotly.react(
      node,
      [{ y: ys, type: "scatter", mode: "lines", fill: "tozeroy", line: { width: 1.5, color: "#2b6cb0" }, hoverinfo: "none" }],
      {
        width: 110, height: 28, margin: { l: 0, r: 0, t: 2, b: 2 },
        xaxis: { visible: false, fixedrange: true }, yaxis: { visible: false, rangemode: "tozero", fixedrange: true },
        showlegend: false, paper_bgcolor: "rgba(0,0,0,0)", plot_bgcolor: "rgba(0,0,0,0)",
      },
      { staticPlot: true, displayModeBar: false },
    );
    node.dataset.points = String(ys.length);
  }

  function csrf() {
    const meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.content : "";
  }

  return { refreshMs, number, pct, points, interval, when, breakdown, sum, el, getJSON, every, setText, updateStatus, sortable, sparkline, plotConfig, csrf };
})();
