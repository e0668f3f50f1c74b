// The backtest pages. A folder's page draws its charts from /api/backtests/<name>: the
// Plotly figures of app/backtest/chart.py, the very ones chart.html draws, as JSON. A run's
// page follows /api/backtests/runs/<id> with a progress bar and opens the result folder
// once it is written. The run form refuses, before sending, files larger than the console
// accepts.
"use strict";

(() => {
  const K = Kairos;
  const config = { displaylogo: false, responsive: true, displayModeBar: false };

  // ------------------------------------------------------------------ one folder's charts
  const folder = document.getElementById("backtest");
  if (folder && window.Plotly) {
    const drawAll = async () => {
      const data = await K.getJSON(`/api/backtests/${encodeURIComponent(folder.dataset.name)}`);
      const spare = document.getElementById("backtest-charts");
      for (const chart of data.charts) {
        let node = folder.querySelector(`[data-chart-id="${chart.id}"]`);
        if (!node) {  // a chart this page has no place for yet: at the end
          node = K.el("div", { className: "chart drawn-by-figure", "data-chart-id": chart.id, testid: `chart-${chart.kind}` });
          spare.append(K.el("figure", { className: "wide" }, node));
        }
        await window.Plotly.react(node, chart.data, chart.layout, config);
        node.dataset.drawn = String(Number(node.dataset.drawn || 0) + 1);
        node.dataset.kind = chart.kind;
      }
      folder.dataset.charts = String(data.charts.length);
    };
    drawAll().catch((error) => {
      folder.prepend(K.el("p", { className: "error", role: "alert", testid: "charts-error" }, `The charts could not be drawn: ${error.message}`));
    });
  }

  // ------------------------------------------------------------------ a run's progress
  const run = document.getElementById("backtest-run");
  if (run) {
    const find = (testid) => run.querySelector(`[data-testid="${testid}"]`);
    const bar = find("run-progress");
    const pollMs = Math.min(K.refreshMs, 500);
    let updates = 0;
    const show = (view) => {
      updates += 1;
      run.dataset.state = view.state;
      run.dataset.updates = String(updates);
      bar.value = view.percent;
      bar.textContent = `${view.percent} %`;
      find("run-percent").textContent = `${view.percent} %`;
      const state = find("run-state");
      state.dataset.state = view.state;
      state.textContent = {
        queued: "Waiting to start…",
        reading: "Reading the rules and the recorded channel reports…",
        replaying: "Replaying the events through the rules…",
        writing: "Writing the report, the CSVs and the charts…",
        done: "Done: opening the result…",
        failed: "The backtest failed.",
      }[view.state] || view.state;
      find("run-events-read").textContent = K.number(view.events);
      const error = find("run-error");
      error.hidden = !view.error;
      error.textContent = view.error || "";
      if (view.url) {
        const link = find("run-result-link");
        link.href = view.url;
        link.textContent = view.folder;
        find("run-result").hidden = false;
      }
    };
    const poll = async () => {
      let view;
      try {
        view = await K.getJSON(`/api/backtests/runs/${encodeURIComponent(run.dataset.runId)}`);
      } catch (error) {
        find("run-error").hidden = false;
        find("run-error").textContent = `Could not ask how far it is (${error.message}); retrying.`;
        window.setTimeout(poll, pollMs * 4);
        return;
      }
      show(view);
      if (view.state === "done" && view.url) {
        // Long enough to see the full bar, then the result.
        window.setTimeout(() => window.location.assign(view.url), 800);
      } else if (view.state !== "failed") {
        window.setTimeout(poll, pollMs);
      }
    };
    poll();
  }

  // ------------------------------------------------------------------ the run form
  const form = document.getElementById("backtest-run-form");
  if (form) {
    const max = Number(form.dataset.maxBytes) || Infinity;
    const warning = form.querySelector('[data-testid="run-too-large"]');
    form.addEventListener("submit", (event) => {
      const size = [...form.querySelectorAll('input[type="file"]')]
        .flatMap((input) => [...(input.files || [])])
        .reduce((total, file) => total + file.size, 0);
      if (size > max) {
        event.preventDefault();
        warning.hidden = false;
        warning.textContent = `These files are ${K.number(Math.ceil(size / 2 ** 20))} MiB together; the console takes ${K.number(Math.floor(max / 2 ** 20))} MiB at most. Run kairos backtest --out on them and open its folder here.`;
        return;
      }
      warning.hidden = true;
      form.querySelector('[data-testid="run-submit"]').disabled = true;
    });
  }
})();
