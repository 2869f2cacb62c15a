/* /moderate/dashboard: draws the four charts with Chart.js (vendor/chart.umd.min.js), and
 * re-reads dashboard.json when a selector changes and every few seconds while visible.
 *
 * The server renders the summary and the tables; the first drawing uses the same data,
 * embedded in the page as a JSON block (#dashboard-data). Later readings refill the summary
 * and tables through textContent only (never innerHTML).
 */
(function () {
  "use strict";

  const main = document.getElementById("dashboard");
  if (!main) return;

  const form = document.getElementById("dash-filters");
  const title = document.getElementById("dash-title");
  const updated = document.getElementById("dash-updated");
  const offline = document.getElementById("offline");
  const jsonUrl = main.dataset.jsonUrl;
  const loginUrl = main.dataset.loginUrl;
  const pollMs = Math.max(0.2, Number(main.dataset.pollSeconds) || 30) * 1000;
  const hasCharts = typeof window.Chart === "function";
  const charts = {};

  let latest = 0; // the number of the last reading asked for: older answers are dropped
  let timer = 0;

  // --- colours and defaults, from moderate.css's variables (light or dark) -------------------

  function palette() {
    const css = getComputedStyle(document.documentElement);
    const value = (name) => css.getPropertyValue(name).trim();
    return {
      font: value("--font"),
      muted: value("--muted"),
      faint: value("--faint"),
      border: value("--border"),
      accent: value("--accent"),
      approve: value("--approve"),
      held: value("--warn"),
      reject: value("--reject"),
    };
  }

  const colours = palette();
  if (hasCharts) {
    Chart.defaults.animation = false; // numbers, not a show; and screenshots are whole
    Chart.defaults.maintainAspectRatio = false;
    Chart.defaults.font.family = colours.font;
    Chart.defaults.color = colours.muted;
    Chart.defaults.borderColor = colours.border;
    Chart.defaults.plugins.legend.labels.usePointStyle = true; // a line for lines, a box for bars
    Chart.defaults.plugins.legend.labels.boxHeight = 8;
  }

  // --- chart configurations ------------------------------------------------------------------

  let step = "hour"; // the current reading's: "hour" or "day"

  function timeTicks() {
    // Hourly labels read "7 Dec 14:00": show the hour, and the day at midnight and first.
    return {
      autoSkip: true,
      maxRotation: 0,
      callback(value, index) {
        const label = this.getLabelForValue(value);
        if (step !== "hour" || index === 0) return label;
        const hour = label.split(" ").pop();
        return hour === "00:00" ? label : hour;
      },
    };
  }

  function bars(label, data, colour, extra) {
    const options = { type: "bar", label, data, backgroundColor: colour, stack: "auto", pointStyle: "rect" };
    return Object.assign(options, extra);
  }

  function line(label, data, colour, extra) {
    return Object.assign(
      {
        type: "line",
        label,
        data,
        borderColor: colour,
        backgroundColor: colour,
        borderWidth: 2,
        pointStyle: "line",
        pointRadius: 0,
        pointHitRadius: 6,
        pointHoverRadius: 4,
        tension: 0, // straight segments: no curve overshooting a count
      },
      extra,
    );
  }

  function outcomesData(view) {
    const s = view.outcomes.series;
    return {
      labels: view.outcomes.labels,
      datasets: [
        bars("Approved", s.approved, colours.approve),
        bars("Held", s.held, colours.held),
        bars("Rejected", s.rejected, colours.reject),
        line("Moderator approved", s.moderator_approved, colours.accent, { stack: "moderator_approved" }),
        line("Moderator rejected", s.moderator_rejected, colours.accent, {
          stack: "moderator_rejected",
          borderDash: [6, 4],
        }),
        line("Reported", s.reported, colours.faint, { stack: "reported", borderDash: [2, 3] }),
      ],
    };
  }

  function outcomesChart(view) {
    return {
      data: outcomesData(view),
      options: {
        interaction: { mode: "index", intersect: false },
        scales: {
          x: { stacked: true, grid: { display: false }, ticks: timeTicks() },
          y: {
            stacked: true,
            beginAtZero: true,
            ticks: { precision: 0 },
            title: { display: true, text: "Comments" },
          },
        },
      },
    };
  }

  function reasonsData(view) {
    return {
      labels: view.reasons.labels,
      datasets: [
        { label: "Held", data: view.reasons.values, backgroundColor: colours.held, maxBarThickness: 28 },
      ],
    };
  }

  function reasonsChart(view) {
    return {
      type: "bar",
      data: reasonsData(view),
      options: {
        indexAxis: "y",
        plugins: { legend: { display: false } },
        scales: {
          x: { beginAtZero: true, ticks: { precision: 0 }, title: { display: true, text: "Held comments" } },
          y: { grid: { display: false } },
        },
      },
    };
  }

  function queueData(view) {
    const q = view.queue;
    return {
      labels: q.labels,
      datasets: [
        // Points too: an hour between two unknown ones would otherwise not show at all.
        line("In the queue", q.size, colours.accent, { yAxisID: "y", pointStyle: "circle", pointRadius: 2 }),
        line("Oldest waiting (minutes)", q.oldest_minutes, colours.held, {
          yAxisID: "y1",
          pointStyle: "circle",
          pointRadius: 2,
          borderDash: [6, 4],
        }),
      ],
    };
  }

  function queueChart(view) {
    return {
      type: "line",
      data: queueData(view),
      options: {
        interaction: { mode: "index", intersect: false },
        scales: {
          x: { grid: { display: false }, ticks: timeTicks() },
          y: {
            position: "left",
            beginAtZero: true,
            ticks: { precision: 0 },
            title: { display: true, text: "Comments waiting" },
          },
          y1: {
            position: "right",
            beginAtZero: true,
            suggestedMax: 5, // not 0.01-minute ticks when the oldest has waited seconds
            grid: { drawOnChartArea: false },
            title: { display: true, text: "Oldest, minutes" },
          },
        },
      },
    };
  }

  function overturnsData(view) {
    const o = view.overturns;
    return {
      // Two-line labels: the counts stay readable without hovering.
      labels: o.labels.map((label, i) => [label, `${o.overturned[i]} of ${o.reviewed[i]}`]),
      datasets: [
        {
          label: "Overturned",
          data: o.percent,
          reviewed: o.reviewed,
          overturned: o.overturned,
          backgroundColor: colours.reject,
          maxBarThickness: 56,
        },
      ],
    };
  }

  function overturnsChart(view) {
    return {
      type: "bar",
      data: overturnsData(view),
      options: {
        plugins: {
          legend: { display: false },
          tooltip: {
            callbacks: {
              label(context) {
                const i = context.dataIndex;
                const { reviewed, overturned } = context.dataset;
                if (!reviewed[i]) return "None reviewed";
                return `${context.raw}% overturned (${overturned[i]} of ${reviewed[i]} reviewed)`;
              },
            },
          },
        },
        scales: {
          x: { grid: { display: false } },
          y: {
            min: 0,
            max: 100,
            ticks: { callback: (value) => `${value}%` },
            title: { display: true, text: "Overturned" },
          },
        },
      },
    };
  }

  const CHARTS = {
    outcomes: { build: outcomesChart, data: outcomesData },
    reasons: { build: reasonsChart, data: reasonsData },
    queue: { build: queueChart, data: queueData },
    overturns: { build: overturnsChart, data: overturnsData },
  };

  function draw(view) {
    step = view.step;
    if (!hasCharts) return;
    for (const [key, chart] of Object.entries(CHARTS)) {
      if (charts[key]) {
        charts[key].data = chart.data(view);
        charts[key].update("none");
      } else {
        const canvas = document.getElementById(`${key}-chart`);
        charts[key] = new Chart(canvas, chart.build(view));
      }
    }
  }

  // --- the summary and tables ----------------------------------------------------------------

  function el(tag, text, attributes) {
    const node = document.createElement(tag);
    if (text !== undefined) node.textContent = text;
    for (const [name, value] of Object.entries(attributes || {})) node.setAttribute(name, value);
    return node;
  }

  function row(cells, first) {
    const tr = el("tr");
    cells.forEach((cell, i) => tr.append(i === 0 ? el("th", cell, { scope: first }) : el("td", cell)));
    return tr;
  }

  function fillTable(key, table) {
    const node = document.querySelector(`[data-table="${key}"]`);
    if (!node) return;
    node.tHead.replaceChildren(el("tr"));
    for (const cell of table.head) node.tHead.rows[0].append(el("th", cell, { scope: "col" }));
    const body = node.tBodies[0];
    body.replaceChildren(...table.rows.map((cells) => row(cells, "row")));
    if (!table.rows.length) {
      const none = el("tr");
      const colspan = String(table.head.length);
      none.append(el("td", "None in this window.", { colspan, class: "muted" }));
      body.append(none);
    }
    node.tFoot.replaceChildren(...(table.foot.length ? [row(table.foot, "row")] : []));
  }

  function fillSummary(summary) {
    for (const node of document.querySelectorAll("[data-stat]")) {
      const stat = summary[node.dataset.stat];
      if (!stat) continue;
      node.textContent = stat.text;
      node.dataset.value = stat.value === null ? "" : String(stat.value);
    }
    for (const node of document.querySelectorAll("[data-stat-detail]")) {
      const stat = summary[node.dataset.statDetail];
      if (stat) node.textContent = stat.detail;
    }
  }

  function show(payload) {
    const view = payload.view;
    title.textContent = view.title;
    fillSummary(view.summary);
    for (const [key, table] of Object.entries(view.tables)) fillTable(key, table);
    const note = document.querySelector("[data-step-note]");
    if (note) note.textContent = view.step === "day" ? ", one bar per day" : "";
    draw(view);
    stamp();
  }

  function stamp() {
    const time = new Date().toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
    updated.textContent = `Updated ${time}`;
  }

  // --- reading dashboard.json ----------------------------------------------------------------

  function selection() {
    const params = new URLSearchParams();
    const site = form.elements.site.value;
    if (site) params.set("site", site);
    params.set("hours", form.elements.hours.value);
    return params;
  }

  async function load() {
    const ask = ++latest;
    let response;
    try {
      response = await fetch(`${jsonUrl}?${selection()}`, {
        headers: { Accept: "application/json" },
        credentials: "same-origin",
      });
    } catch (error) {
      if (ask === latest) offline.hidden = false;
      return;
    }
    if (response.status === 401) {
      window.location.assign(loginUrl);
      return;
    }
    if (ask !== latest) return; // the selection changed meanwhile
    if (!response.ok) {
      offline.hidden = false;
      return;
    }
    const payload = await response.json();
    if (ask !== latest) return;
    offline.hidden = true;
    show(payload);
    if (payload.page && payload.page !== window.location.pathname + window.location.search) {
      window.history.replaceState(null, "", payload.page);
    }
  }

  function schedule() {
    clearTimeout(timer);
    timer = setTimeout(async () => {
      if (!document.hidden) await load();
      schedule();
    }, pollMs);
  }

  form.addEventListener("change", () => {
    load();
    schedule();
  });
  form.addEventListener("submit", (event) => {
    event.preventDefault(); // Enter in a select: the same as a change
    load();
    schedule();
  });
  document.addEventListener("visibilitychange", () => {
    if (document.hidden) return;
    load();
    schedule();
  });

  if (hasCharts) {
    main.classList.add("charted"); // shows the chart boxes (dashboard.css), before drawing
  } else {
    for (const details of document.querySelectorAll("details.numbers")) details.open = true;
  }
  draw(JSON.parse(document.getElementById("dashboard-data").textContent).view);
  stamp();
  schedule();
  document.documentElement.classList.add("js"); // wired: selectors reload the data from here on
})();
