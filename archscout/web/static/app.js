// archscout dashboard: draws the charts from the page's JSON block, sorts tables, polls for updates.
// Loaded as a file (never inline) so pages run under `script-src 'self'`; everything is drawn from
// the <script type="application/json" id="page-data"> block so pages also work from file://.
(function () {
  "use strict";
  var block = document.getElementById("page-data");
  var data = block ? JSON.parse(block.textContent) : {};
  var CONFIG = { displaylogo: false, responsive: true };
  var FONT = { family: "system-ui, sans-serif", size: 12 };

  function layout(extra) {
    var base = { margin: { l: 55, r: 15, t: 35, b: 45 }, font: FONT, hovermode: "closest",
                 paper_bgcolor: "rgba(0,0,0,0)", plot_bgcolor: "#fafafa" };
    for (var k in extra) { base[k] = extra[k]; }
    return base;
  }

  function archUrl(id) { return data.arch_url.replace("{id}", String(id)); }

  function openOnClick(el) {
    el.on("plotly_click", function (ev) {
      var p = ev.points && ev.points[0];
      if (p && p.customdata !== undefined && p.customdata !== null) { window.location.href = archUrl(p.customdata); }
    });
  }

  // a posterior fitness as the pages print it (render.fmt_posterior): mean [90% interval] (runs)
  function posteriorText(p) {
    if (!p || p.mean === null || p.mean === undefined) { return "—"; }
    return p.mean.toFixed(4) + " [" + p.lo.toFixed(4) + ", " + p.hi.toFixed(4) + "] (" + p.n + (p.n === 1 ? " run)" : " runs)");
  }

  function drawTree(el) {
    var nodes = data.nodes;
    // smaller markers and automatic ticks once the tree is large, so thousands of nodes stay legible
    var big = nodes.length > 300;
    var scored = nodes.filter(function (n) { return n.fitness !== null; });
    var unscored = nodes.filter(function (n) { return n.fitness === null; });
    function label(n) {
      return "#" + n.id + " " + n.name + "<br>" + n.origin + ", fitness " +
        (n.fitness === null ? "none" : n.fitness.toFixed(4)) + "<br>posterior " + posteriorText(n.posterior) +
        (n.verified ? "<br>verified: " + n.verified : "");
    }
    function markers(list, marker, name) {
      return { type: "scatter", mode: "markers", name: name, x: list.map(function (n) { return n.x; }),
               y: list.map(function (n) { return n.y; }), customdata: list.map(function (n) { return n.id; }),
               text: list.map(label), hoverinfo: "text", marker: marker };
    }
    var traces = [
      { type: "scatter", mode: "lines", x: data.edges.x, y: data.edges.y, hoverinfo: "skip", showlegend: false,
        line: { color: "#bbb", width: 1 } },
      markers(unscored, { color: "#ccc", size: 7, line: { color: "#999", width: 1 } }, "not scored"),
      markers(scored, { color: scored.map(function (n) { return n.fitness; }), colorscale: "Viridis", size: big ? 5 : 9,
                        showscale: true, colorbar: { title: { text: "fitness" } } }, "scored")
    ];
    var ver = nodes.filter(function (n) { return n.verified; });
    traces.push(markers(ver.filter(function (n) { return n.verified === "discovery"; }),
      { symbol: "star", size: 18, color: "rgba(0,0,0,0)", line: { color: "#d62728", width: 2 } }, "verified discovery"));
    traces.push(markers(ver.filter(function (n) { return n.verified !== "discovery"; }),
      { symbol: "diamond-open", size: 15, color: "#ff7f0e", line: { width: 2 } }, "verified, not significant"));
    Plotly.newPlot(el, traces, layout({
      xaxis: { title: { text: "generation" }, zeroline: false, dtick: big ? null : 1 },
      yaxis: { visible: false }, legend: { orientation: "h", y: -0.08 }, dragmode: "pan"
    }), CONFIG).then(openOnClick);
  }

  function band(x, mean, std, name) {
    var upper = mean.map(function (m, i) { return m + std[i]; });
    var lower = mean.map(function (m, i) { return m - std[i]; });
    return [
      { type: "scatter", mode: "lines", x: x, y: upper, line: { width: 0 }, hoverinfo: "skip", showlegend: false },
      { type: "scatter", mode: "lines", x: x, y: lower, line: { width: 0 }, fill: "tonexty",
        fillcolor: "rgba(31,119,180,0.15)", name: name, hoverinfo: "skip" },
      { type: "scatter", mode: "lines", x: x, y: mean, line: { color: "rgba(31,119,180,0.7)", dash: "dot" },
        name: "baseline mean" }
    ];
  }

  function drawTrend(el) {
    var metric = el.getAttribute("data-metric");
    var pts = data.points.filter(function (p) { return p[metric] !== null; });
    var xs = pts.map(function (p) { return p.seq; });
    var traces = [];
    var lo = Math.min.apply(null, xs.concat([0])), hi = Math.max.apply(null, xs.concat([1]));
    var b = data.baseline[metric];
    if (b) { traces = band([lo, hi], [b.mean, b.mean], [b.std, b.std], "baseline ± 1 std (" + b.n + " seeds)"); }
    if (metric === "fitness" && data.baseline_fitness !== null) {
      traces.push({ type: "scatter", mode: "lines", x: [lo, hi], y: [data.baseline_fitness, data.baseline_fitness],
                    name: "baseline (seed 0)", line: { color: "#888", dash: "dot" } });
    }
    if (metric === "fitness") {
      // each point's posterior over all its runs, with its 90% interval, beside the one run's fitness
      var withPost = pts.filter(function (p) { return p.posterior; });
      traces.push({ type: "scatter", mode: "markers", name: "posterior (90%)", hoverinfo: "skip",
                    x: withPost.map(function (p) { return p.seq + 0.25; }),
                    y: withPost.map(function (p) { return p.posterior.mean; }),
                    error_y: { type: "data", symmetric: false, color: "rgba(148,103,189,0.6)", thickness: 1,
                               array: withPost.map(function (p) { return p.posterior.hi - p.posterior.mean; }),
                               arrayminus: withPost.map(function (p) { return p.posterior.mean - p.posterior.lo; }) },
                    marker: { color: "rgba(148,103,189,0.8)", size: 5, symbol: "diamond" } });
    }
    traces.push({ type: "scatter", mode: "markers", x: xs, y: pts.map(function (p) { return p[metric]; }),
                  customdata: pts.map(function (p) { return p.id; }),
                  text: pts.map(function (p) {
                    return "#" + p.id + " " + p.name + (metric === "fitness" ? "<br>posterior " + posteriorText(p.posterior) : "");
                  }), name: metric,
                  marker: { color: "#2ca02c", size: 7 } });
    Plotly.newPlot(el, traces, layout({ title: { text: el.getAttribute("data-title") },
      xaxis: { title: { text: "experiment" } }, showlegend: false }), CONFIG).then(openOnClick);
  }

  function drawScaling(el) {
    var rows = data.scaling;
    var x = rows.map(function (r) { return r.cumulative_compute_h; });
    Plotly.newPlot(el, [
      { type: "scatter", mode: "lines", line: { shape: "hv" }, x: x,
        y: rows.map(function (r) { return r.cumulative_single_run_improvements; }), name: "single-run improvements" },
      { type: "scatter", mode: "lines", line: { shape: "hv" }, x: x,
        y: rows.map(function (r) { return r.cumulative_verified_discoveries; }), name: "verified discoveries" }
    ], layout({ xaxis: { title: { text: "cumulative compute (device-hours)" } }, yaxis: { title: { text: "count" } },
                legend: { x: 0, y: 1 } }), CONFIG);
  }

  function drawShrinkage(el) {
    var rows = data.shrinkage.rows;
    var all = rows.map(function (r) { return r.explore; }).concat(rows.map(function (r) { return r.verify; }), [0]);
    var lo = Math.min.apply(null, all), hi = Math.max.apply(null, all);
    Plotly.newPlot(el, [
      { type: "scatter", mode: "lines", x: [lo, hi], y: [lo, hi], name: "no shrinkage", line: { dash: "dash", color: "#888" } },
      { type: "scatter", mode: "markers", x: rows.map(function (r) { return r.explore; }),
        y: rows.map(function (r) { return r.verify; }), customdata: rows.map(function (r) { return r.arch_id; }),
        text: rows.map(function (r) { return "#" + r.arch_id; }), name: "verified architectures", marker: { size: 10 } }
    ], layout({ xaxis: { title: { text: "exploration Δ (single run)" } },
                yaxis: { title: { text: "verification Δ (mean over seeds)" } }, showlegend: false }), CONFIG).then(openOnClick);
  }

  function drawCurve(el) {
    var c = data.curves[el.getAttribute("data-key")];
    var traces = c.band ? band(c.band.steps, c.band.mean, c.band.std, "baseline ± 1 std (" + c.band.seeds + " seeds)") : [];
    c.series.forEach(function (s) { traces.push({ type: "scatter", mode: "lines+markers", x: s.x, y: s.y, name: s.name }); });
    Plotly.newPlot(el, traces, layout({ title: { text: c.title }, xaxis: { title: { text: "step" } },
      yaxis: { title: { text: c.ylabel } }, legend: { orientation: "h", y: -0.25 } }), CONFIG);
  }

  var DRAW = { tree: drawTree, trend: drawTrend, scaling: drawScaling, shrinkage: drawShrinkage, curve: drawCurve };
  if (window.Plotly) {
    document.querySelectorAll("[data-chart]").forEach(function (el) { DRAW[el.getAttribute("data-chart")](el); });
  }

  // Sortable tables: cells carry their raw value in data-v; numbers sort numerically, blanks last.
  document.querySelectorAll("table.sortable").forEach(function (table) {
    table.querySelectorAll("th").forEach(function (th, col) {
      th.addEventListener("click", function () {
        var numeric = th.getAttribute("data-type") === "num";
        var desc = th.getAttribute("data-dir") !== "desc";
        table.querySelectorAll("th").forEach(function (h) { h.removeAttribute("data-dir"); });
        th.setAttribute("data-dir", desc ? "desc" : "asc");
        var body = table.tBodies[0];
        var rows = Array.prototype.slice.call(body.rows);
        rows.sort(function (a, b) {
          var x = a.cells[col].getAttribute("data-v"), y = b.cells[col].getAttribute("data-v");
          if (x === "" || y === "") { return (x === "") - (y === ""); }
          var r = numeric ? parseFloat(x) - parseFloat(y) : x.localeCompare(y);
          return desc ? -r : r;
        });
        rows.forEach(function (r) { body.appendChild(r); });
      });
    });
  });

  // Live overview: while served (not from disk), re-read the .json twin and update the counters.
  if (document.body.getAttribute("data-live") === "on") {
    var twin = document.body.getAttribute("data-twin");
    var status = document.getElementById("live-status");
    var lastTotal = null;
    var pick = function (obj, path) {
      return path.split(".").reduce(function (o, k) { return o === null || o === undefined ? o : o[k]; }, obj);
    };
    var poll = function () {
      fetch(twin, { credentials: "same-origin", cache: "no-store" }).then(function (r) {
        if (!r.ok) { throw new Error("HTTP " + r.status); }
        return r.json();
      }).then(function (fresh) {
        document.querySelectorAll("[data-field]").forEach(function (el) {
          var v = pick(fresh, el.getAttribute("data-field"));
          var f = el.getAttribute("data-format");
          if (v === undefined || v === null) { return; }
          el.textContent = f === "hours" ? Number(v).toFixed(3) : f === "usd" ? Number(v).toFixed(4) : String(v);
        });
        var total = fresh.experiments.total;
        if (status) { status.textContent = "live: updated " + new Date().toLocaleTimeString(); }
        // tables (best, recent, verification) change shape; re-render them when experiments finish
        if (lastTotal !== null && total !== lastTotal && fresh.experiments.in_progress === 0) { window.location.reload(); }
        lastTotal = total;
      }).catch(function (err) {
        if (status) { status.textContent = "live: " + err.message; }
      });
    };
    window.setInterval(poll, 4000);
  }
})();
