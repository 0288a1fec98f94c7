"use strict";
(function () {
  var SVG = "http://www.w3.org/2000/svg";
  var X0 = 50, X1 = 790, Y0 = 230, Y1 = 10;
  function $(id) { return document.getElementById(id); }
  function fmt(n) { return n === null || n === undefined ? "–" : Number(n).toLocaleString("en-US", { maximumFractionDigits: 2 }); }
  function set(id, text, value) {
    var el = $(id);
    el.textContent = text;
    if (arguments.length > 2) { el.setAttribute("data-value", value === null || value === undefined ? "" : String(value)); }
  }
  function duration(s) {
    if (s === null || s === undefined) { return "– (rate is zero)"; }
    if (s === 0) { return "reached"; }
    var d = Math.floor(s / 86400), h = Math.floor((s % 86400) / 3600), m = Math.ceil((s % 3600) / 60);
    return (d ? d + " d " : "") + (d || h ? h + " h " : "") + (d ? "" : m + " min");
  }
  function list(id, entries) {
    var ul = $(id);
    while (ul.firstChild) { ul.removeChild(ul.firstChild); }
    entries.forEach(function (e) {
      var li = document.createElement("li");
      if (e.cls) { li.className = e.cls; }
      li.textContent = e.text;
      if (e.key) { li.setAttribute("data-key", e.key); li.setAttribute("data-value", String(e.value)); }
      ul.appendChild(li);
    });
    if (!entries.length) { var li = document.createElement("li"); li.textContent = "none"; ul.appendChild(li); }
  }
  function chart(m) {
    var s = m.series, p = m.progress, bars = $("bars");
    while (bars.firstChild) { bars.removeChild(bars.firstChild); }
    if (!s || !p) { $("burndown").setAttribute("points", ""); return; }
    var n = s.migrations.length, sum = 0, i;
    for (i = 0; i < n; i++) { sum += s.migrations[i]; }
    var before = Math.max(0, p.migrated_users - sum);
    var legacy = p.legacy_users;
    var values = [], cum = before, maxBar = 1;
    for (i = 0; i < n; i++) {
      cum += s.migrations[i];
      values.push(legacy === null ? cum : Math.max(0, legacy - cum));
      maxBar = Math.max(maxBar, s.migrations[i]);
    }
    $("series-kind").textContent = legacy === null ? "legacy store not counted yet: cumulative migrated users instead" : "legacy users minus migrated users";
    var top = legacy === null ? Math.max(1, cum) : Math.max(1, legacy);
    var dx = (X1 - X0) / Math.max(1, n - 1), pts = [];
    for (i = 0; i < n; i++) {
      var x = X0 + i * dx, y = Y0 - (values[i] / top) * (Y0 - Y1);
      pts.push(x.toFixed(1) + "," + y.toFixed(1));
      if (s.migrations[i] > 0) {
        var r = document.createElementNS(SVG, "rect"), hgt = (s.migrations[i] / maxBar) * 60;
        r.setAttribute("x", (x - Math.max(1, dx / 2)).toFixed(1));
        r.setAttribute("width", Math.max(1, dx).toFixed(1));
        r.setAttribute("y", (Y0 - hgt).toFixed(1));
        r.setAttribute("height", hgt.toFixed(1));
        bars.appendChild(r);
      }
    }
    $("burndown").setAttribute("points", pts.join(" "));
    $("y-max").textContent = fmt(top);
    $("x-start").textContent = new Date(s.start_ms).toISOString().slice(0, 10);
    $("days").textContent = String(Math.round(n * s.bucket_seconds / 86400));
    var goal = $("chart-target");
    if (legacy !== null && m.eta) {
      var left = legacy - Math.ceil(m.eta.target_share * legacy), gy = Y0 - (left / top) * (Y0 - Y1);
      goal.setAttribute("y1", gy.toFixed(1)); goal.setAttribute("y2", gy.toFixed(1));
    }
  }
  // Phase and canary: POST /phase with the admin token typed into the page. The token lives in
  // the password field only (never in storage, a cookie or a URL); without one the controls
  // stay hidden and the page read-only.
  var token = $("token"), change = $("change"), edited = false;
  function showResult(text, refused) {
    var out = $("controls-result");
    out.textContent = text;
    out.className = refused ? "small refused" : "small";
    out.hidden = false;
  }
  token.addEventListener("input", function () {
    change.hidden = token.value === "";
    $("controls-note").hidden = !change.hidden;
  });
  $("new-phase").addEventListener("change", function () { edited = true; });
  $("new-canary").addEventListener("input", function () { edited = true; });
  $("controls").addEventListener("submit", function (ev) {
    ev.preventDefault();
    if (token.value === "") { return; }
    var body = { phase: $("new-phase").value }, canary = $("new-canary").value;
    if (canary !== "") { body.canary_percent = Number(canary); }
    if ($("force").checked) { body.force = true; }
    fetch("/phase", {
      method: "POST",
      cache: "no-store",
      credentials: "omit",
      headers: { "Authorization": "Bearer " + token.value, "Content-Type": "application/json" },
      body: JSON.stringify(body)
    })
      .then(function (resp) { return resp.text().then(function (t) { return { ok: resp.ok, status: resp.status, text: t }; }); })
      .then(function (r) {
        if (!r.ok) { showResult("refused: HTTP " + r.status + ": " + r.text.trim().slice(0, 200), true); return; }
        var now = JSON.parse(r.text);
        showResult("applied: phase " + now.phase + ", canary " + fmt(now.canary_percent) + " %", false);
        edited = false;
        tick();
      })
      .catch(function (err) { showResult("cannot reach /phase: " + err.message, true); });
  });
  function syncControls(settings) {
    if (edited) { return; }
    $("new-phase").value = settings.phase;
    $("new-canary").value = String(settings.canary_percent);
  }
  function render(st) {
    var deps = Object.keys(st.dependencies || {}).sort().map(function (k) {
      var d = st.dependencies[k];
      return { cls: d.up ? "up" : "down", text: k + ": " + (d.up ? "up" : "down" + (d.detail ? " (" + d.detail + ")" : "")) };
    });
    list("deps", deps);
    $("ready").textContent = st.ready ? "ready" : "not ready";
    var m = st.migration;
    $("controls-card").hidden = !m;
    if (!m) { set("phase", "pass-through (no migration configured)"); set("canary", "–"); census(null); return; }
    syncControls(m.settings);
    var o = m.settings_origin || {};
    set("origin", (o.source || "–") + (o.changed_by ? " (" + o.changed_by + ")" : "") +
      (o.changed_at ? " at " + new Date(o.changed_at).toISOString() : "") +
      (o.version ? ", version " + o.version : ""), o.source);
    set("handoff", m.handoff_completed_at ? new Date(m.handoff_completed_at).toISOString() : "never", m.handoff_completed_at);
    set("phase", m.settings.phase, m.settings.phase);
    set("canary", fmt(m.settings.canary_percent) + " %", m.settings.canary_percent);
    var p = m.progress || {}, r = m.rate || {}, e = m.eta || {};
    set("migrated", fmt(p.migrated_users), p.migrated_users);
    set("legacy", fmt(p.legacy_users), p.legacy_users);
    set("share", p.share === null || p.share === undefined ? "–" : (p.share * 100).toFixed(1) + " %", p.share);
    var share = p.share || 0;
    $("bar-fill").setAttribute("width", String(Math.round(Math.min(1, share) * 1000)));
    if (e.target_share !== undefined) {
      var tx = String(Math.round(e.target_share * 1000));
      $("bar-target").setAttribute("x1", tx); $("bar-target").setAttribute("x2", tx);
    }
    set("rate", fmt(r.users_per_hour), r.users_per_hour);
    set("rate-method", r.rate_method || "–");
    set("rate24", fmt(r.users_per_hour_24h), r.users_per_hour_24h);
    set("target", e.target_share === undefined ? "target" : Math.round(e.target_share * 100) + " %");
    set("eta", duration(e.seconds), e.seconds);
    set("eta-rate", fmt(e.users_per_hour), e.users_per_hour);
    set("eta-method", e.rate_method || "–");
    set("to-target", fmt(e.users_to_target), e.users_to_target);
    var f = m.failures || {};
    list("failures", Object.keys(f).sort().map(function (k) { return { text: k + ": " + fmt(f[k]) }; }));
    var sl = m.signins_last_hour || {};
    set("signins-scope", (m.signins_scope || "–").replace("_", " "));
    list("signins", Object.keys(sl).filter(function (k) { return sl[k] > 0; }).sort().map(function (k) {
      return { text: k + ": " + fmt(sl[k]), value: sl[k], key: k };
    }));
    census(m.census);
    chart(m);
  }
  function census(c) {
    $("census-card").hidden = !c;
    if (!c) { return; }
    var s = c.summary || {}, fm = s.formats || {}, nm = s.not_migratable || {};
    set("census-users", fmt(s.users), s.users);
    set("census-migratable", fmt(s.migratable), s.migratable);
    set("census-not", fmt(s.not_migratable_total), s.not_migratable_total);
    set("census-at", new Date(c.taken_at).toLocaleString());
    list("census-formats", Object.keys(fm).sort().map(function (k) { return { text: k + ": " + fmt(fm[k]), value: fm[k], key: k }; }));
    list("census-reasons", Object.keys(nm).sort().map(function (k) { return { text: k + ": " + fmt(nm[k]), value: nm[k], key: k }; }));
  }
  function tick() {
    fetch("/status", { cache: "no-store", credentials: "omit" })
      .then(function (resp) { if (!resp.ok) { throw new Error("HTTP " + resp.status); } return resp.json(); })
      .then(function (st) {
        render(st);
        $("error").hidden = true;
        $("updated").textContent = new Date().toLocaleTimeString();
        document.body.setAttribute("data-loaded", "1");
      })
      .catch(function (err) { $("error").textContent = "cannot read /status: " + err.message; $("error").hidden = false; });
  }
  tick();
  setInterval(tick, 5000);
})();
