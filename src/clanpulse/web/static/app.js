/* clanpulse dashboard: progressive enhancement only. Every page works without it.
 *
 * - draws the bar charts from <canvas data-chart='{"type", "label", "labels", "values"}'>
 *   with the vendored Chart.js (loaded before this file, both deferred);
 * - submits the members filter form as soon as a select changes, and after a pause
 *   in typing in the search box.
 *
 * The CSP forbids inline script and inline event handlers: all wiring happens here.
 */
(function () {
  "use strict";

  var SEARCH_DELAY_MS = 300;
  var REFOCUS_KEY = "clanpulse:refocus-search";

  var PALETTE = {
    "messages-chart": { light: "rgb(37, 99, 201)", dark: "rgb(122, 167, 240)" },
    "xp-chart": { light: "rgb(22, 138, 84)", dark: "rgb(94, 204, 140)" },
  };
  var FALLBACK_COLOUR = { light: "rgb(100, 110, 130)", dark: "rgb(160, 170, 185)" };

  function prefersDark() {
    return !!(window.matchMedia && window.matchMedia("(prefers-color-scheme: dark)").matches);
  }

  var MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];

  // "2025-03-07" -> "7 Mar" (labels are local dates; no Date parsing, so no time zone shift)
  function shortDay(label) {
    var m = /^(\d{4})-(\d{2})-(\d{2})$/.exec(String(label));
    if (!m) return String(label);
    return String(Number(m[3])) + " " + MONTHS[Number(m[2]) - 1];
  }

  function formatNumber(value) {
    if (value === null || value === undefined) return "no data";
    return Number(value).toLocaleString("en-US");
  }

  function drawChart(canvas) {
    var spec;
    try {
      spec = JSON.parse(canvas.getAttribute("data-chart"));
    } catch (err) {
      return;
    }
    if (!spec || !Array.isArray(spec.labels) || !Array.isArray(spec.values)) return;

    var dark = prefersDark();
    var colours = PALETTE[canvas.id] || FALLBACK_COLOUR;
    var colour = dark ? colours.dark : colours.light;
    var grid = dark ? "rgba(255, 255, 255, 0.08)" : "rgba(20, 30, 50, 0.08)";
    var ticks = dark ? "rgb(154, 163, 178)" : "rgb(93, 102, 117)";
    // null means "no data that day": Chart.js leaves a gap for it
    var values = spec.values.map(function (v) {
      return typeof v === "number" && isFinite(v) ? v : null;
    });

    var existing = window.Chart.getChart ? window.Chart.getChart(canvas) : null;
    if (existing) existing.destroy();

    new window.Chart(canvas, {
      type: spec.type === "line" ? "line" : "bar",
      data: {
        labels: spec.labels,
        datasets: [
          {
            label: String(spec.label || ""),
            data: values,
            backgroundColor: colour,
            borderColor: colour,
            borderRadius: 2,
            maxBarThickness: 28,
          },
        ],
      },
      options: {
        animation: false,
        responsive: true,
        maintainAspectRatio: false,
        interaction: { mode: "index", intersect: false },
        plugins: {
          legend: { display: false },
          tooltip: {
            callbacks: {
              title: function (items) {
                return items.length ? String(items[0].label) : "";
              },
              label: function (item) {
                return " " + formatNumber(item.raw);
              },
            },
          },
        },
        scales: {
          x: {
            grid: { display: false },
            ticks: {
              color: ticks,
              maxRotation: 0,
              autoSkip: true,
              autoSkipPadding: 12,
              callback: function (value) {
                return shortDay(this.getLabelForValue(value));
              },
            },
          },
          y: {
            beginAtZero: true,
            grid: { color: grid },
            border: { display: false },
            ticks: {
              color: ticks,
              maxTicksLimit: 6,
              precision: 0,
              callback: function (value) {
                return Number(value).toLocaleString("en-US", {
                  notation: Math.abs(value) >= 100000 ? "compact" : "standard",
                });
              },
            },
          },
        },
      },
    });
  }

  function drawCharts() {
    if (typeof window.Chart !== "function") return; // no Chart.js: the fallback text stays
    var canvases = document.querySelectorAll("canvas[data-chart]");
    for (var i = 0; i < canvases.length; i++) {
      try {
        drawChart(canvases[i]);
      } catch (err) {
        if (window.console) window.console.warn("chart not drawn:", err);
      }
    }
  }

  function submit(form) {
    if (typeof form.requestSubmit === "function") form.requestSubmit();
    else form.submit();
  }

  function enhanceFilters() {
    var form = document.getElementById("member-filters");
    if (!form) return;

    var selects = form.querySelectorAll("select");
    for (var i = 0; i < selects.length; i++) {
      selects[i].addEventListener("change", function () {
        submit(form);
      });
    }

    var search = form.querySelector('input[name="q"]');
    if (!search) return;
    var timer = null;
    var submitted = search.value;
    search.addEventListener("input", function () {
      if (timer !== null) window.clearTimeout(timer);
      timer = window.setTimeout(function () {
        timer = null;
        if (search.value === submitted) return;
        submitted = search.value;
        try {
          window.sessionStorage.setItem(REFOCUS_KEY, "1");
        } catch (err) {
          /* storage may be off: we only lose the refocus */
        }
        submit(form);
      }, SEARCH_DELAY_MS);
    });
    form.addEventListener("submit", function () {
      if (timer !== null) window.clearTimeout(timer);
      timer = null;
    });

    // Back after a submit from typing: keep typing where one left off.
    var refocus = null;
    try {
      refocus = window.sessionStorage.getItem(REFOCUS_KEY);
      window.sessionStorage.removeItem(REFOCUS_KEY);
    } catch (err) {
      refocus = null;
    }
    if (refocus) {
      search.focus();
      var end = search.value.length;
      try {
        search.setSelectionRange(end, end);
      } catch (err) {
        /* some input types do not support selection */
      }
    }
  }

  function start() {
    document.documentElement.classList.add("js");
    drawCharts();
    enhanceFilters();
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
