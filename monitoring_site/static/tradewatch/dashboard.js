/* The operator's dashboard: renders the state the page was served with, then keeps it
 * fresh. Where the live event stream (GET /api/v1/stream) works, each alert, health or
 * trading state change it announces fetches dashboard.json at once, and a slow poll
 * keeps charts and ages current; where it does not (no EventSource, a proxy that
 * buffers or drops the stream, a server that cannot hold it), dashboard.json is polled
 * every few seconds, as before. `data-live` on the root says which: "stream" or "polling".
 */
"use strict";

(function () {
  var root = document.getElementById("tw-dashboard");
  if (!root) { return; }
  var state = JSON.parse(document.getElementById("tw-dashboard-state").textContent);
  var pollMs = Number(root.dataset.pollSeconds || 5) * 1000;
  var streamPollMs = Number(root.dataset.streamPollSeconds || 60) * 1000;
  var jsonUrl = root.dataset.jsonUrl;
  var streamUrl = root.dataset.streamUrl;
  // True from the stream's `ready` event until an error: a buffering proxy never lets
  // `ready` through, so such a page goes on polling.
  var streaming = false;
  var lastPoll = 0;
  var refreshTimer = null;
  var csrfToken = root.querySelector("input[name=csrfmiddlewaretoken]").value;
  var chartSource = state.chart.source, chartRange = state.chart.range;

  function node(tag, attrs, children) {
    var element = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (key) {
      if (key === "text") { element.textContent = attrs[key]; }
      else if (key === "className") { element.className = attrs[key]; }
      else { element.setAttribute(key, attrs[key]); }
    });
    (children || []).forEach(function (child) { if (child) { element.appendChild(child); } });
    return element;
  }

  function ago(iso) {
    if (!iso) { return "never"; }
    var seconds = Math.max(0, (Date.now() - Date.parse(iso)) / 1000);
    if (seconds < 90) { return Math.round(seconds) + " s ago"; }
    if (seconds < 5400) { return Math.round(seconds / 60) + " min ago"; }
    if (seconds < 172800) { return Math.round(seconds / 3600) + " h ago"; }
    return Math.round(seconds / 86400) + " d ago";
  }

  function badge(status, label) { return node("span", { className: "tw-badge tw-" + status, text: label }); }

  function renderSystem() {
    var box = document.getElementById("tw-system");
    box.textContent = "";
    box.appendChild(node("div", { className: "tw-rollup" }, [
      node("span", { text: "System " }), badge(state.system.status, state.system.status_label),
    ]));
    var counts = node("ul", { className: "tw-counts" });
    Object.keys(state.system.counts).forEach(function (status) {
      if (state.system.counts[status]) {
        counts.appendChild(node("li", {}, [badge(status, status), node("span", { text: " " + state.system.counts[status] })]));
      }
    });
    box.appendChild(counts);
    if (state.system.unhealthy_checks.length) {
      box.appendChild(node("p", { className: "tw-note", text: "Checks not healthy: " + state.system.unhealthy_checks.join(", ") }));
    }
    if (state.system.tradewatch_issues && state.system.tradewatch_issues.length) {
      box.appendChild(node("p", { className: "tw-note", text: "Tradewatch itself: " + state.system.tradewatch_issues.join("; ") }));
    }
    var severities = document.getElementById("tw-severities");
    severities.textContent = "";
    state.firing.by_severity.forEach(function (item) {
      severities.appendChild(node("li", { className: "tw-sev tw-sev-" + item.severity + (item.count ? "" : " tw-zero") }, [
        node("strong", { text: String(item.count) }), node("span", { text: " " + item.label }),
      ]));
    });
  }

  function acknowledgeForm(alert) {
    var form = node("form", { method: "post", action: alert.acknowledge_url, className: "tw-ack" }, [
      node("input", { type: "hidden", name: "csrfmiddlewaretoken", value: csrfToken }),
      node("button", { type: "submit", className: "button", "data-testid": "acknowledge", text: "Acknowledge" }),
    ]);
    form.addEventListener("submit", function (event) {
      event.preventDefault();
      form.querySelector("button").disabled = true;
      fetch(alert.acknowledge_url, {
        method: "POST", credentials: "same-origin",
        headers: { "X-CSRFToken": csrfToken, "Accept": "application/json" },
      }).then(function () { poll(); });
    });
    return form;
  }

  function renderFiring() {
    var body = document.getElementById("tw-firing-rows");
    body.textContent = "";
    document.getElementById("tw-firing-total").textContent = String(state.firing.total);
    if (state.firing.alerts.length === 0) {
      body.appendChild(node("tr", {}, [node("td", { colspan: "6", className: "tw-quiet", text: "Nothing is firing." })]));
      return;
    }
    state.firing.alerts.forEach(function (alert) {
      var acknowledged = alert.acknowledged_by
        ? node("span", { className: "tw-acked", text: "acknowledged by " + alert.acknowledged_by })
        : (state.can_acknowledge ? acknowledgeForm(alert) : node("span", { className: "tw-quiet", text: "not acknowledged" }));
      body.appendChild(node("tr", { "data-alert-id": String(alert.id), className: "tw-alert" }, [
        node("td", {}, [node("span", { className: "tw-sev-badge tw-sev-" + alert.severity, text: alert.severity_label })]),
        node("td", {}, [node("a", { href: alert.url, text: alert.rule })]),
        node("td", { text: alert.source }),
        node("td", { className: "tw-message", text: alert.message }),
        node("td", { title: alert.fired_at || "", text: ago(alert.fired_at) }),
        node("td", {}, [acknowledged]),
      ]));
    });
  }

  function tradingCell(source) {
    var cell = [node("span", { className: "tw-badge tw-trading-" + source.trading_state, text: source.trading_state.replace("_", " ") })];
    var urls = source.control_urls;
    if (state.can_halt && source.trading_state !== "halted") {
      cell.push(node("a", { className: "button", href: urls.halt, text: "Halt" }));
    }
    if (state.can_halt && source.trading_state === "active") {
      cell.push(node("a", { className: "button", href: urls.reduce, text: "Reduce only" }));
    }
    if (state.can_rearm && source.trading_state !== "active") {
      cell.push(node("a", { className: "button", href: urls.rearm, text: "Re-arm" }));
    }
    return cell;
  }

  function renderTrading() {
    var box = document.getElementById("tw-trading-banners");
    box.textContent = "";
    state.trading.banners.forEach(function (banner) {
      var parts = [
        node("strong", { text: banner.text }),
        node("span", { className: "tw-note", text: " (" + banner.set_by + ", " + ago(banner.since) + (banner.expires_at ? ", until " + banner.expires_at.substring(11, 16) + " UTC" : "") + ") " }),
      ];
      if (banner.alert_url) { parts.push(node("a", { href: banner.alert_url, text: "the alert" })); }
      if (state.can_rearm) { parts.push(node("a", { className: "button", href: banner.rearm_url, text: "Re-arm" })); }
      box.appendChild(node("div", { className: "tw-banner tw-banner-" + banner.state, "data-scope": banner.scope }, parts));
    });
    if (state.can_halt) {
      box.appendChild(node("p", {}, [node("a", { className: "button", href: state.trading.halt_all_url, text: "Halt every source" })]));
    }
  }

  function renderSources() {
    var body = document.getElementById("tw-source-rows");
    body.textContent = "";
    if (state.sources.length === 0) {
      body.appendChild(node("tr", {}, [node("td", { colspan: "6", className: "tw-quiet", text: "No source yet." })]));
    }
    state.sources.forEach(function (source) {
      body.appendChild(node("tr", { "data-source-id": String(source.id) }, [
        node("td", {}, [node("a", { href: source.url, text: source.name })]),
        node("td", {}, [badge(source.status, source.score + " " + source.status_label)]),
        node("td", { "data-testid": "trading-state" }, tradingCell(source)),
        node("td", { title: source.heartbeat || "", "data-testid": "heartbeat", text: source.market_closed ? "market closed" : ago(source.heartbeat) }),
        node("td", { text: String(source.open_alerts) }),
        node("td", { className: "tw-note", text: source.issues.join("; ") }),
      ]));
    });
    var select = document.getElementById("tw-chart-source");
    var chosen = String(state.chart.source || "");
    select.textContent = "";
    state.sources.forEach(function (source) {
      var option = node("option", { value: String(source.id), text: source.name });
      if (String(source.id) === chosen) { option.selected = true; }
      select.appendChild(option);
    });
  }

  function renderCharts() {
    var charts = window.TradewatchCharts;
    charts.bars(document.getElementById("tw-per-hour"), state.alerts_per_hour.map(function (item) {
      return { label: item.hour.substring(11, 16), value: item.count };
    }), { label: "alerts per hour" });
    charts.line(document.getElementById("tw-equity"), state.chart.equity, { label: "equity", className: "tw-equity" });
    charts.line(document.getElementById("tw-drawdown"), state.chart.drawdown, { label: "drawdown %", className: "tw-drawdown" });
    document.getElementById("tw-updated").textContent = "Updated " + new Date(state.generated_at).toISOString().substring(11, 19) + " UTC" +
      (streaming ? " (live)" : " (every " + pollMs / 1000 + " s)");
  }

  function render() { renderTrading(); renderSystem(); renderFiring(); renderSources(); renderCharts(); }

  function poll() {
    lastPoll = Date.now();
    var url = jsonUrl + "?range=" + encodeURIComponent(chartRange) + (chartSource ? "&source=" + chartSource : "");
    return fetch(url, { credentials: "same-origin", headers: { "Accept": "application/json" } })
      .then(function (answer) {
        if (!answer.ok) { throw new Error("HTTP " + answer.status); }
        return answer.json();
      })
      .then(function (fresh) { state = fresh; root.classList.remove("tw-stale"); render(); })
      .catch(function () { root.classList.add("tw-stale"); });
  }

  document.getElementById("tw-chart-source").addEventListener("change", function (event) {
    chartSource = event.target.value; poll();
  });
  document.getElementById("tw-chart-range").addEventListener("change", function (event) {
    chartRange = event.target.value; poll();
  });

  function refreshSoon() {
    // A burst of changes (a storm, a halt of every source) costs one fetch.
    if (refreshTimer === null) {
      refreshTimer = window.setTimeout(function () { refreshTimer = null; poll(); }, 200);
    }
  }

  function setLive(live) {
    streaming = live;
    root.dataset.live = live ? "stream" : "polling";
  }

  function listen() {
    setLive(false);
    if (!streamUrl || typeof window.EventSource !== "function") { return; }
    var events = new window.EventSource(streamUrl);
    events.addEventListener("ready", function () { setLive(true); refreshSoon(); });
    ["alert", "health", "trading_state", "reset"].forEach(function (kind) {
      events.addEventListener(kind, refreshSoon);
    });
    // The browser reconnects by itself (with Last-Event-ID) unless the server refused
    // the stream; meanwhile, and after a refusal, the page polls.
    events.addEventListener("error", function () { setLive(false); });
  }

  render();
  listen();
  window.setInterval(function () {
    if (document.hidden) { return; }
    if (!streaming || Date.now() - lastPoll >= streamPollMs) { poll(); }
  }, pollMs);
})();
