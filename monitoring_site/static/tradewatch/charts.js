/* Tradewatch's charts: line and bar charts drawn as plain SVG, no library, no network.
 *
 * TradewatchCharts.line(element, points, options) draws [[isoTime, value], ...];
 * options.threshold draws a dashed horizontal line (an alert's limit), options.marker
 * a vertical one (when the alert fired). TradewatchCharts.bars(element, bars) draws
 * [{label, value}] as columns.
 */
"use strict";

window.TradewatchCharts = (function () {
  var SVG = "http://www.w3.org/2000/svg";
  var WIDTH = 640, HEIGHT = 200, LEFT = 56, RIGHT = 12, TOP = 12, BOTTOM = 24;

  function el(name, attrs, text) {
    var node = document.createElementNS(SVG, name);
    Object.keys(attrs || {}).forEach(function (key) { node.setAttribute(key, attrs[key]); });
    if (text !== undefined) { node.textContent = text; }
    return node;
  }

  function svgRoot(element, label) {
    element.textContent = "";
    var svg = el("svg", {
      viewBox: "0 0 " + WIDTH + " " + HEIGHT, class: "tw-chart", role: "img", "aria-label": label || "chart",
    });
    element.appendChild(svg);
    return svg;
  }

  function formatValue(value) {
    var size = Math.abs(value);
    if (size >= 1e6) { return (value / 1e6).toFixed(1) + "M"; }
    if (size >= 1e4) { return (value / 1e3).toFixed(1) + "k"; }
    if (size >= 100) { return value.toFixed(0); }
    return value.toFixed(size >= 10 ? 1 : 2);
  }

  function formatTime(ms, spanMs) {
    var date = new Date(ms);
    var hhmm = date.toISOString().substring(11, 16);
    return spanMs > 2 * 86400000 ? date.toISOString().substring(5, 10) + " " + hhmm : hhmm;
  }

  function line(element, points, options) {
    options = options || {};
    var svg = svgRoot(element, options.label);
    if (!points || points.length === 0) {
      svg.appendChild(el("text", { x: WIDTH / 2, y: HEIGHT / 2, "text-anchor": "middle", class: "tw-empty" },
        options.empty || "No data in this range"));
      return svg;
    }
    var xs = points.map(function (p) { return Date.parse(p[0]); });
    var ys = points.map(function (p) { return p[1]; });
    var extra = [];
    if (typeof options.threshold === "number") { extra.push(options.threshold); }
    var lo = Math.min.apply(null, ys.concat(extra)), hi = Math.max.apply(null, ys.concat(extra));
    if (lo === hi) { lo -= 1; hi += 1; }
    var pad = (hi - lo) * 0.08; lo -= pad; hi += pad;
    var x0 = Math.min.apply(null, xs), x1 = Math.max.apply(null, xs);
    if (options.marker) { var m = Date.parse(options.marker); x0 = Math.min(x0, m); x1 = Math.max(x1, m); }
    if (options.start) { x0 = Math.min(x0, Date.parse(options.start)); }
    if (options.end) { x1 = Math.max(x1, Date.parse(options.end)); }
    if (x0 === x1) { x0 -= 30000; x1 += 30000; }
    function sx(x) { return LEFT + (x - x0) / (x1 - x0) * (WIDTH - LEFT - RIGHT); }
    function sy(y) { return TOP + (hi - y) / (hi - lo) * (HEIGHT - TOP - BOTTOM); }

    for (var i = 0; i <= 4; i++) {
      var v = lo + (hi - lo) * i / 4;
      svg.appendChild(el("line", { x1: LEFT, x2: WIDTH - RIGHT, y1: sy(v), y2: sy(v), class: "tw-grid" }));
      svg.appendChild(el("text", { x: LEFT - 6, y: sy(v) + 4, "text-anchor": "end", class: "tw-axis" }, formatValue(v)));
    }
    for (var j = 0; j <= 4; j++) {
      var t = x0 + (x1 - x0) * j / 4;
      var anchor = j === 0 ? "start" : (j === 4 ? "end" : "middle");  // keep the ends inside
      svg.appendChild(el("text", { x: sx(t), y: HEIGHT - 6, "text-anchor": anchor, class: "tw-axis" },
        formatTime(t, x1 - x0)));
    }
    var path = points.map(function (p, k) { return (k ? "L" : "M") + sx(xs[k]).toFixed(1) + " " + sy(ys[k]).toFixed(1); });
    svg.appendChild(el("path", { d: path.join(" "), class: "tw-line " + (options.className || "") }));
    if (typeof options.threshold === "number") {
      var ty = sy(options.threshold);
      svg.appendChild(el("line", { x1: LEFT, x2: WIDTH - RIGHT, y1: ty, y2: ty, class: "tw-threshold" }));
      svg.appendChild(el("text", { x: WIDTH - RIGHT - 4, y: ty - 4, "text-anchor": "end", class: "tw-threshold-label" },
        "threshold " + formatValue(options.threshold)));
    }
    if (options.marker) {
      var mx = sx(Date.parse(options.marker));
      svg.appendChild(el("line", { x1: mx, x2: mx, y1: TOP, y2: HEIGHT - BOTTOM, class: "tw-marker" }));
      var right = mx > WIDTH - RIGHT - 40;  // near the right edge: label on the left
      svg.appendChild(el("text", { x: right ? mx - 4 : mx + 4, y: TOP + 10, "text-anchor": right ? "end" : "start", class: "tw-marker-label" },
        options.markerLabel || "fired"));
    }
    return svg;
  }

  function bars(element, items, options) {
    options = options || {};
    var svg = svgRoot(element, options.label);
    var max = Math.max.apply(null, items.map(function (b) { return b.value; }).concat([1]));
    var width = (WIDTH - LEFT - RIGHT) / Math.max(items.length, 1);
    svg.appendChild(el("text", { x: LEFT - 6, y: TOP + 4, "text-anchor": "end", class: "tw-axis" }, String(max)));
    svg.appendChild(el("text", { x: LEFT - 6, y: HEIGHT - BOTTOM, "text-anchor": "end", class: "tw-axis" }, "0"));
    items.forEach(function (bar, k) {
      var h = bar.value / max * (HEIGHT - TOP - BOTTOM);
      var rect = el("rect", {
        x: LEFT + k * width + 1, y: HEIGHT - BOTTOM - h, width: Math.max(width - 2, 1), height: h, class: "tw-bar",
      });
      rect.appendChild(el("title", {}, bar.label + ": " + bar.value));
      svg.appendChild(rect);
      if (k % 3 === 0) {
        svg.appendChild(el("text", { x: LEFT + k * width + width / 2, y: HEIGHT - 6, "text-anchor": "middle", class: "tw-axis" }, bar.label));
      }
    });
    return svg;
  }

  return { line: line, bars: bars };
})();
