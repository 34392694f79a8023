// Charts of the site's pages, drawn with plotly.js from the page's json_script data.
// One file instead of inline scripts (the Content-Security-Policy forbids inline
// script); each chart is drawn only when its data element is on the page.
(function () {
  "use strict";
  if (!window.Plotly) return;

  function read(id) {
    var el = document.getElementById(id);
    return el ? JSON.parse(el.textContent) : null;
  }

  // No toolbar: its "edit in Chart Studio" / "send to cloud" buttons would offer
  // the owner's customer data to Plotly's servers, and its ten or so buttons were
  // ten tab stops per chart for keyboard users. Cloud buttons stay removed should
  // the bar ever come back. Every chart's figures are also in a table on its page.
  var CONFIG = {
    displayModeBar: false,
    displaylogo: false,
    showSendToCloud: false,
    showEditInChartStudio: false,
    modeBarButtonsToRemove: ["sendDataToCloud", "editInChartStudio"],
    showTips: false,
    responsive: true
  };

  // Draw one chart into its element (role="img" with an aria-label as the text
  // alternative: screen readers read the label, not the SVG's parts).
  function draw(id, traces, layout) {
    var el = document.getElementById(id);
    if (!el) return;
    el.setAttribute("role", "img");
    if (!el.getAttribute("aria-label")) el.setAttribute("aria-label", "Chart; the figures are in the table on this page.");
    Plotly.newPlot(el, traces, layout, CONFIG);
    // Nothing inside the picture takes keyboard focus.
    el.querySelectorAll("a, button, [tabindex]").forEach(function (node) { node.setAttribute("tabindex", "-1"); });
  }

  // A month axis ("2026-03" values) reads as months whatever the span: left to
  // itself, plotly zooms a single month to fractions of a second around its first
  // day. Up to a year, one tick per month; one month gets half a month each side.
  function monthAxis(months) {
    var axis = {type: "date", tickformat: "%b %Y", hoverformat: "%b %Y"};
    if (months.length <= 12) axis.dtick = "M1";
    if (months.length === 1) {
      var first = new Date(months[0] + "-01T00:00:00Z");
      var day = 24 * 3600 * 1000;
      axis.range = [new Date(first.getTime() - 15 * day).toISOString().slice(0, 10),
                    new Date(first.getTime() + 16 * day).toISOString().slice(0, 10)];
    }
    return axis;
  }

  // --- revenue ---
  (function () {
    var d = read("revenue-data");
    if (!d) return;
    draw("revenue-chart", [
      {x: d.months, y: d.revenue, type: "bar", name: "Revenue", marker: {color: "#3b4fd8"}},
      {x: d.months, y: d.orders, type: "scatter", mode: "lines+markers", name: "Orders", yaxis: "y2", line: {color: "#17794a"}}
    ], {
      margin: {t: 20, r: 60, b: 40, l: 60},
      xaxis: monthAxis(d.months),
      yaxis: {title: {text: "Revenue"}, rangemode: "tozero"}, yaxis2: {title: {text: "Orders"}, overlaying: "y", side: "right", rangemode: "tozero"},
      legend: {orientation: "h"}
    });
  })();

  // --- sales ---
  (function () {
    var d = read("sales-data");
    if (!d) return;
    draw("sales-chart", [
      {x: d.months, y: d.units, type: "bar", name: "Units", marker: {color: "#3b4fd8"}},
      {x: d.months, y: d.revenue, type: "scatter", mode: "lines+markers", name: "Revenue", yaxis: "y2", line: {color: "#17794a"}}
    ], {
      margin: {t: 20, r: 60, b: 40, l: 50},
      xaxis: monthAxis(d.months),
      yaxis: {title: {text: "Units"}, rangemode: "tozero"}, yaxis2: {title: {text: "Revenue"}, overlaying: "y", side: "right", rangemode: "tozero"},
      legend: {orientation: "h"}
    });
  })();

  // --- segments ---
  (function () {
    var data = read("segment-chart-data");
    if (!data) return;
    var p = data.projection || {};
    var names = {};
    data.segments.forEach(function (s) { names[s.id] = s.name; });
    var traces = data.segments.map(function (s) {
      var xs = [], ys = [];
      (p.segment_ids || []).forEach(function (sid, i) { if (sid === s.id) { xs.push(p.x[i]); ys.push(p.y[i]); } });
      return {type: "scatter", mode: "markers", name: s.name, x: xs, y: ys, marker: {size: 5, opacity: 0.7},
              hovertemplate: s.name + "<extra></extra>"};
    });
    draw("segment-map", traces, {margin: {t: 10, r: 10, b: 40, l: 40}, xaxis: {title: "first direction"}, yaxis: {title: "second direction"}, legend: {orientation: "h"}});
    var h = data.heatmap;
    draw("segment-profiles", [{type: "heatmap", x: h.segments, y: h.features, z: h.z, zmid: 100,
      colorscale: "RdBu", reversescale: true, text: h.z, texttemplate: "%{text}", hovertemplate: "%{y}<br>%{x}: %{z}<extra></extra>",
      colorbar: {title: "index"}}], {height: 120 + 36 * h.features.length, margin: {t: 10, r: 10, b: 80, l: 10}, xaxis: {automargin: true}, yaxis: {autorange: "reversed", automargin: true}});
  })();

  // --- segment ---
  (function () {
    var el = document.getElementById("profile-data");
    if (el) {
      var rows = JSON.parse(el.textContent).slice().reverse();
      draw("profile-chart", [{type: "bar", orientation: "h", y: rows.map(function (r) { return r.label; }),
        x: rows.map(function (r) { return r.index; }), hovertext: rows.map(function (r) { return r.sentence; }), hoverinfo: "text",
        marker: {color: rows.map(function (r) { return r.index >= 100 ? "#3b4fd8" : "#b4232c"; })}}],
        {margin: {t: 10, r: 10, b: 40, l: 10}, xaxis: {title: "index (100 = average)"}, yaxis: {automargin: true},
         shapes: [{type: "line", x0: 100, x1: 100, yref: "paper", y0: 0, y1: 1, line: {dash: "dot"}}]});
    }
    var h = document.getElementById("history-data");
    if (h) {
      var d = JSON.parse(h.textContent);
      draw("history-chart", [{type: "scatter", mode: "lines+markers", x: d.x, y: d.y, name: "customers"}],
        {margin: {t: 10, r: 10, b: 40, l: 60}, yaxis: {title: "customers", rangemode: "tozero"}});
    }
  })();

  // --- predictions ---
  (function () {
    var data = read("prediction-charts");
    if (!data) return;
    var margin = {t: 10, r: 10, b: 50, l: 50};
    if (data.weeks && document.getElementById("chart-weeks")) {
      draw("chart-weeks", [
        {type: "bar", name: "Actual", x: data.weeks.start, y: data.weeks.actual_orders, marker: {color: "#9aa6e8"}},
        {type: "scatter", mode: "lines+markers", name: "Predicted", x: data.weeks.start, y: data.weeks.predicted_orders, line: {color: "#1c2333"}}
      ], {margin: margin, yaxis: {title: "orders"}, legend: {orientation: "h"}});
    }
    if (data.calibration && data.calibration.length && document.getElementById("chart-calibration")) {
      var c = data.calibration;
      draw("chart-calibration", [
        {type: "scatter", mode: "lines", name: "Perfect", x: [0, 1], y: [0, 1], line: {dash: "dot", color: "#8a93a6"}, hoverinfo: "skip"},
        {type: "scatter", mode: "markers+lines", name: "Risk groups",
         x: c.map(function (r) { return r.predicted_no_order; }), y: c.map(function (r) { return r.observed_no_order; }),
         text: c.map(function (r) { return r.group + " (" + r.customers + " customers)"; }),
         hovertemplate: "%{text}<br>expected %{x:.0%}, observed %{y:.0%}<extra></extra>"}
      ], {margin: margin, xaxis: {title: "expected share without an order", tickformat: ".0%", range: [0, 1]},
          yaxis: {title: "observed share", tickformat: ".0%", range: [0, 1]}, legend: {orientation: "h"}});
    }
    var h = data.histogram;
    if (h && h.counts && h.counts.length && document.getElementById("chart-value")) {
      var mids = [], labels = [];
      for (var i = 0; i < h.counts.length; i++) { mids.push((h.edges[i] + h.edges[i + 1]) / 2); labels.push(Math.round(h.edges[i]) + "–" + Math.round(h.edges[i + 1])); }
      draw("chart-value", [{type: "bar", x: mids, y: h.counts, text: labels, hovertemplate: "%{text}: %{y} customers<extra></extra>", marker: {color: "#3b4fd8"}}],
        {margin: margin, bargap: 0.05, xaxis: {title: "predicted 12-month value" + (h.above ? " (" + h.above + " customers above the last bar)" : "")}, yaxis: {title: "customers"}});
    }
  })();

  // --- demand ---
  (function () {
    var d = read("demand-chart");
    if (!d) return;
    var hx = d.history.map(function (w) { return w.start; }), hy = d.history.map(function (w) { return w.units; });
    var fx = d.weeks.map(function (w) { return w.start; });
    var traces = [
      {type: "bar", name: "Sold", x: hx, y: hy, marker: {color: "#9aa6e8"}},
      {type: "scatter", mode: "lines", name: "Range (upper)", x: fx, y: d.weeks.map(function (w) { return w.upper; }), line: {width: 0}, showlegend: false, hoverinfo: "skip"},
      {type: "scatter", mode: "lines", name: "Likely range", x: fx, y: d.weeks.map(function (w) { return w.lower; }), fill: "tonexty", fillcolor: "rgba(59,79,216,0.18)", line: {width: 0}},
      {type: "scatter", mode: "lines+markers", name: "Expected", x: fx, y: d.weeks.map(function (w) { return w.units; }), line: {color: "#3b4fd8"}}
    ];
    draw("chart-demand", traces, {margin: {t: 10, r: 10, b: 50, l: 50}, yaxis: {title: "units per week", rangemode: "tozero"}, legend: {orientation: "h"}});
  })();
})();
