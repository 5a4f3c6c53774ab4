// The pool map: points from the JSON block #sk-map-data drawn on each canvas.skmap (one per
// selection), a hover tooltip with the nearest point's id, selections and text. Coordinates are
// integers in 0..1023; a 32x32 bucket grid finds the nearest point without scanning them all.
(function () {
  "use strict";
  var block = document.getElementById("sk-map-data");
  if (!block) { return; }
  var d = JSON.parse(block.textContent);
  var n = d.xy.length / 2, GRID = 1023, B = 32;
  var buckets = new Array(B * B);
  for (var b = 0; b < buckets.length; b++) { buckets[b] = []; }
  function cell(v) { return Math.min(B - 1, Math.floor(v * B / (GRID + 1))); }
  for (var i = 0; i < n; i++) { buckets[cell(d.xy[2 * i + 1]) * B + cell(d.xy[2 * i])].push(i); }
  var pickedBy = new Array(n);
  d.picks.forEach(function (list, s) {
    list.forEach(function (p) { (pickedBy[p] = pickedBy[p] || []).push(s); });
  });
  function esc(t) {
    return String(t).replace(/[&<>"]/g, function (c) {
      return {"&": "&amp;", "<": "&lt;", ">": "&gt;", "\"": "&quot;"}[c];
    });
  }
  document.querySelectorAll("canvas.skmap").forEach(function (canvas) {
    var s = Number(canvas.getAttribute("data-pick"));
    var size = canvas.width, ratio = window.devicePixelRatio || 1, pad = 6;
    canvas.style.width = size + "px"; canvas.style.height = size + "px";
    canvas.width = Math.round(size * ratio); canvas.height = Math.round(size * ratio);
    var ctx = canvas.getContext("2d");
    ctx.scale(ratio, ratio);
    var scale = (size - 2 * pad) / GRID;
    function px(i) { return pad + d.xy[2 * i] * scale; }
    function py(i) { return size - pad - d.xy[2 * i + 1] * scale; }
    ctx.fillStyle = "#ffffff"; ctx.fillRect(0, 0, size, size);
    // small pools get larger, darker dots; 50k points stay a light cloud
    var dot = n < 5000 ? 3 : 2;
    ctx.fillStyle = n < 5000 ? "rgba(110,110,110,0.55)" : "rgba(120,120,120,0.35)";
    for (var i = 0; i < n; i++) { ctx.fillRect(px(i) - dot / 2, py(i) - dot / 2, dot, dot); }
    var mine = s >= 0 ? d.picks[s] : [];
    ctx.fillStyle = d.colours[s] || "#0072b2";
    ctx.strokeStyle = "rgba(255,255,255,0.9)"; ctx.lineWidth = 0.6;
    mine.forEach(function (p) {
      ctx.beginPath(); ctx.arc(px(p), py(p), 2.8, 0, 2 * Math.PI); ctx.fill(); ctx.stroke();
    });
    var own = {};
    mine.forEach(function (p) { own[p] = true; });
    // the point under (x, y) in CSS px: nearest within 8 px, a pick of this map on a tie
    function nearest(x, y) {
      var gx = (x - pad) / scale, gy = (size - pad - y) / scale;
      var cx = cell(Math.max(0, Math.min(GRID, gx))), cy = cell(Math.max(0, Math.min(GRID, gy)));
      var best = -1, bestD = 64;
      for (var yy = Math.max(0, cy - 1); yy <= Math.min(B - 1, cy + 1); yy++) {
        for (var xx = Math.max(0, cx - 1); xx <= Math.min(B - 1, cx + 1); xx++) {
          buckets[yy * B + xx].forEach(function (j) {
            var dx = px(j) - x, dy = py(j) - y, dd = dx * dx + dy * dy;
            if (dd < bestD - 0.01 || (dd <= bestD + 0.01 && own[j] && !own[best])) {
              best = j; bestD = dd;
            }
          });
        }
      }
      return best;
    }
    var tip = canvas.parentNode.querySelector(".tip");
    canvas.addEventListener("mousemove", function (ev) {
      var r = canvas.getBoundingClientRect();
      var x = ev.clientX - r.left, y = ev.clientY - r.top, j = nearest(x, y);
      if (j < 0) { tip.style.display = "none"; return; }
      var who = (pickedBy[j] || []).map(function (k) { return d.names[k]; });
      var html = "<b>" + esc(d.ids[j]) + "</b>" +
        (who.length ? " · picked by " + esc(who.join(", ")) : " · not picked");
      if (d.texts) { html += "<br>" + esc(d.texts[j]); }
      tip.innerHTML = html;
      tip.style.display = "block";
      tip.style.left = Math.min(x + 14, size - 200) + "px";
      tip.style.top = (y + 14 + canvas.offsetTop) + "px";
    });
    canvas.addEventListener("mouseleave", function () { tip.style.display = "none"; });
    // where a test (or a curious reader) can point: the first pick that is its own nearest point
    for (var k = 0; k < mine.length; k++) {
      if (nearest(px(mine[k]), py(mine[k])) === mine[k]) {
        canvas.setAttribute("data-probe-x", px(mine[k]).toFixed(1));
        canvas.setAttribute("data-probe-y", py(mine[k]).toFixed(1));
        canvas.setAttribute("data-probe-id", d.ids[mine[k]]);
        break;
      }
    }
    canvas.setAttribute("data-drawn", String(n));
  });
})();
