"""The report page's 3-D scenes, drawn on a 2-D canvas instead of plotly's WebGL scene.

Why by hand: in headless Chromium without a GPU (software WebGL) each plotly ``surface`` scene
cost 0.35-2.5 s of main thread (shader setup, per-frame size checks that force a layout of the
page, read-backs of the picking buffer), and plotly's 3-D traces need its full 4.8 MB bundle,
whose parse alone took ~1 s: together more than half of the tour report's render time (#17,
measured in docs/report.md). A loss surface is a small height field (at most ~100x100 quads
drawn), which a canvas draws back to front (painter's algorithm) in milliseconds. plotly still
draws the frame around it: title, legend (proxy traces with the paths' names, colours and
dashes: clicking one hides its path here too) and the colour bar (a proxy trace on the same
Viridis scale), so the page needs only plotly's cartesian bundle.

The scene: drag to rotate, wheel to zoom, double-click to reset the view; hovering a path point
shows its step (and distance off the plane), hovering the surface its (x, y, loss). Paths are
drawn over the surface (never hidden behind a hill: the picture is about where training went).
``plotly.py`` users keep a real plotly 3-D figure: :func:`to_plotly` does not go through here.
"""
from __future__ import annotations

from typing import Any

#: the box's aspect when the figure gives none (a cube, as plotly draws it)
_DEFAULT_ASPECT = {"x": 1, "y": 1, "z": 1}


def canvas_scene(spec: dict) -> dict:
    """A plotly 3-D spec (``surface`` + ``scatter3d`` traces and ``layout.scene``) turned into
    a 2-D plotly frame of proxy traces plus ``spec["scene3d"]`` for the page's canvas.

    Trace indices are kept (trace ``i`` of the result stands for trace ``i`` of the input), so
    the step slider's trace list still names the marker traces."""
    data, layout = spec["data"], dict(spec["layout"])
    scene_layout = layout.pop("scene")
    proxies: list[dict] = []
    surface: dict[str, Any] | None = None
    paths: list[dict] = []
    for i, t in enumerate(data):
        if t["type"] == "surface":
            surface = {k: t.get(k) for k in ("x", "y", "z", "cmin", "cmax", "name")}
            # the colour bar: a marker trace with no points on the same scale
            proxies.append({"type": "scatter", "mode": "markers", "x": [None], "y": [None], "name": t.get("name"),
                            "showlegend": False, "hoverinfo": "skip",
                            "marker": {"color": [t["cmin"], t["cmax"]], "cmin": t["cmin"], "cmax": t["cmax"],
                                       "colorscale": t.get("colorscale", "Viridis"), "showscale": True,
                                       "colorbar": t.get("colorbar", {})}})
            continue
        if t["type"] != "scatter3d":
            raise ValueError(f"a 3-D scene holds surface and scatter3d traces, got {t['type']!r}")
        line, marker = t.get("line") or {}, t.get("marker") or {}
        paths.append({"trace": i, "x": t["x"], "y": t["y"], "z": t["z"], "name": t.get("name"),
                      "customdata": t.get("customdata"), "hovertemplate": t.get("hovertemplate"),
                      "lines": "lines" in t.get("mode", ""), "color": line.get("color") or marker.get("color"),
                      "dash": line.get("dash"), "size": marker.get("size", 3), "symbol": marker.get("symbol"),
                      "outline": (marker.get("line") or {}).get("color")})
        proxy = {k: v for k, v in t.items() if k not in ("z", "customdata", "hovertemplate")}
        proxy.update({"type": "scatter", "x": [None], "y": [None], "hoverinfo": "skip"})
        proxies.append(proxy)
    if surface is None:
        raise ValueError("a 3-D scene needs a surface trace")
    dom = scene_layout.get("domain", {"x": [0, 1], "y": [0, 1]})
    hidden = {"visible": False, "range": [0, 1], "fixedrange": True}
    layout.update({"xaxis": {**hidden, "domain": dom["x"]}, "yaxis": {**hidden, "domain": dom["y"]},
                   "hovermode": False, "dragmode": False})
    eye = scene_layout.get("camera", {}).get("eye", {"x": 1.25, "y": 1.25, "z": 1.25})
    axes = {a: {"title": scene_layout[f"{a}axis"]["title"]["text"], "range": scene_layout[f"{a}axis"]["range"]}
            for a in ("x", "y", "z")}
    scene = {"surface": surface, "paths": paths, "axes": axes,
             "eye": [eye["x"], eye["y"], eye["z"]],
             "aspect": [scene_layout.get("aspectratio", _DEFAULT_ASPECT)[a] for a in ("x", "y", "z")]}
    return {**spec, "data": proxies, "layout": layout, "scene3d": scene}


SCENE_JS = r"""
// losslab's 3-D scene on a 2-D canvas (report/scene3d.py says why): painter's algorithm over the
// surface's quads, paths and step markers drawn over it, back walls with grid lines, tick labels.
window.losslabScene = (function(){
  var VIRIDIS = ['#440154','#48186a','#472d7b','#424086','#3b528b','#33638d','#2c728e','#26828e','#21918c',
                 '#1fa088','#28ae80','#3fbc73','#5ec962','#84d44b','#addc30','#d8e219','#fde725'];
  var VRGB = VIRIDIS.map(function(h){ return [1, 3, 5].map(function(i){ return parseInt(h.slice(i, i + 2), 16); }); });
  function viridis(t){  // plotly's Viridis: 17 even stops, linear in between
    t = (t > 0 ? Math.min(1, t) : 0) * 16;  // NaN -> the low end
    var i = Math.min(15, Math.floor(t)), f = t - i, a = VRGB[i], b = VRGB[i + 1];
    return [a[0] + f * (b[0] - a[0]), a[1] + f * (b[1] - a[1]), a[2] + f * (b[2] - a[2])];
  }
  var DASH = {dash: [9, 6], dot: [2, 5], dashdot: [9, 4, 2, 4], longdash: [16, 6], longdashdot: [16, 5, 2, 5]};
  var MAX_QUADS = 100;  // at most 100x100 quads drawn (a finer grid is drawn at a stride; its data stays whole)
  // a decoded array carries its flat values in .flat (assets.js forData); a plain list is flat already
  function flat(a){ return a === null || a === undefined ? null : (typeof a.flat === 'function' ? a : a.flat); }
  function niceTicks(lo, hi){
    var span = hi - lo; if (!(span > 0)) return [lo];
    var raw = span / 5, p = Math.pow(10, Math.floor(Math.log10(raw))), m = raw / p;
    var step = (m < 1.5 ? 1 : m < 3.5 ? 2 : m < 7.5 ? 5 : 10) * p, out = [];
    for (var v = Math.ceil(lo / step - 1e-9) * step; v <= hi + step * 1e-9; v += step) out.push(Math.abs(v) < step * 1e-9 ? 0 : v);
    return out;
  }
  function fmt(v, spec){  // plotly's d3 formats as used in losslab's hover templates: '.4g' or none
    if (typeof v !== 'number') return String(v);
    if (v === 0) return '0';
    if (spec && /^\.\d+g$/.test(spec)) { var s = v.toPrecision(parseInt(spec.slice(1), 10)); return String(Number(s)) === 'NaN' ? s : (Math.abs(v) >= 1e-4 && Math.abs(v) < 1e6 ? String(Number(s)) : s); }
    return String(Number(v.toPrecision(12)));
  }
  // titles arrive HTML-escaped for plotly (plotly_render.esc); a canvas draws text as it is, so unescape
  function unesc(s){ var t = document.createElement('textarea'); t.innerHTML = String(s === null || s === undefined ? '' : s); return t.value; }
  function hoverText(tpl, x, y, z, cd){
    return tpl.replace('<extra></extra>', '').replace(/%\{(\w+)(?:\[(\d+)\])?(?::([^}]*))?\}/g, function(all, key, idx, spec){
      var v = key === 'x' ? x : key === 'y' ? y : key === 'z' ? z : key === 'customdata' ? cd : undefined;
      if (idx !== undefined && v !== null && v !== undefined) v = v[parseInt(idx, 10)];
      return v === undefined || v === null ? '' : fmt(v, spec);
    });
  }
  return function(div, S){
    var surf = S.surface, gx = flat(surf.x), gy = flat(surf.y), gz = flat(surf.z), nx = gx.length, ny = gy.length;
    var ax = S.axes, titles = {x: unesc(ax.x.title), y: unesc(ax.y.title), z: unesc(ax.z.title)}, rx = ax.x.range, ry = ax.y.range, rz = ax.z.range, asp = S.aspect;
    var cmin = surf.cmin, cmax = surf.cmax;
    function bx(x){ return ((x - rx[0]) / ((rx[1] - rx[0]) || 1) * 2 - 1) * asp[0]; }
    function by(y){ return ((y - ry[0]) / ((ry[1] - ry[0]) || 1) * 2 - 1) * asp[1]; }
    function bz(z){ return ((z - rz[0]) / ((rz[1] - rz[0]) || 1) * 2 - 1) * asp[2]; }
    var e = S.eye, az0 = Math.atan2(e[1], e[0]), el0 = Math.atan2(e[2], Math.hypot(e[0], e[1]));
    var view = {az: az0, el: el0, zoom: 1};
    var paths = S.paths.map(function(p){
      var P = {src: p, cd: p.customdata};
      setPoints(P, flat(p.x), flat(p.y), flat(p.z));
      return P;
    });
    function setPoints(P, x, y, z){  // data coordinates -> box coordinates (NaN where z is missing)
      var n = x.length;
      P.n = n; P.x = x; P.y = y; P.z = z;
      P.X = Array.prototype.map.call(x, bx); P.Y = Array.prototype.map.call(y, by);
      P.Z = Array.prototype.map.call(z, function(v){ return v === null ? NaN : bz(v); });
      P.sx = new Float32Array(n); P.sy = new Float32Array(n); P.depth = new Float32Array(n);
    }
    // the grid drawn: every vertex, or a stride of it for a grid finer than MAX_QUADS
    function strided(n){ var s = Math.max(1, Math.ceil((n - 1) / MAX_QUADS)), out = []; for (var i = 0; i < n; i += s) out.push(i); if (out[out.length - 1] !== n - 1) out.push(n - 1); return out; }
    var ix = strided(nx), iy = strided(ny), mx = ix.length, my = iy.length;
    var VX = new Float32Array(mx * my), VY = new Float32Array(mx * my), VZ = new Float32Array(mx * my), RAW = new Float64Array(mx * my);
    for (var j = 0; j < my; j++) for (var i = 0; i < mx; i++) {
      var k = j * mx + i, zv = gz[iy[j] * nx + ix[i]];
      VX[k] = bx(gx[ix[i]]); VY[k] = by(gy[iy[j]]); RAW[k] = (zv === null ? NaN : zv); VZ[k] = bz(RAW[k]);
    }
    var SX = new Float32Array(mx * my), SY = new Float32Array(mx * my), SD = new Float32Array(mx * my);
    var nq = (mx - 1) * (my - 1), order = new Uint32Array(nq), qd = new Float32Array(nq), quadColor = [], quadOk = new Uint8Array(nq);
    var QN = new Float32Array(3 * nq);  // each quad's unit normal (box coordinates: fixed, only the light moves)
    for (var q = 0; q < nq; q++) {  // each quad's colour (mean loss) and normal, once
      var qi = q % (mx - 1), qj = (q - qi) / (mx - 1), a = qj * mx + qi, c = [a, a + 1, a + mx + 1, a + mx];
      var m = (RAW[c[0]] + RAW[c[1]] + RAW[c[2]] + RAW[c[3]]) / 4;
      quadOk[q] = isFinite(m) ? 1 : 0;  // a quad with a NaN corner (a diverged region) is a hole
      quadColor.push(quadOk[q] ? viridis((m - cmin) / ((cmax - cmin) || 1)) : null);
      var ux = VX[c[2]] - VX[c[0]], uy = VY[c[2]] - VY[c[0]], uz = VZ[c[2]] - VZ[c[0]];
      var vx = VX[c[3]] - VX[c[1]], vy = VY[c[3]] - VY[c[1]], vz = VZ[c[3]] - VZ[c[1]];
      var nxv = uy * vz - uz * vy, nyv = uz * vx - ux * vz, nzv = ux * vy - uy * vx, nl = Math.hypot(nxv, nyv, nzv) || 1;
      QN[3 * q] = nxv / nl; QN[3 * q + 1] = nyv / nl; QN[3 * q + 2] = nzv / nl;
    }
    var box = div.querySelector('.svg-container') || div;
    var cv = document.createElement('canvas'), tip = document.createElement('div');
    cv.className = 'scene3d'; cv.setAttribute('role', 'img');
    cv.setAttribute('aria-label', '3-D surface of ' + (surf.name || 'the loss') + ': drag to rotate, wheel to zoom, double-click to reset');
    cv.style.cssText = 'position:absolute;cursor:grab;touch-action:none';
    tip.className = 'scene3d-tip';
    tip.style.cssText = 'position:absolute;display:none;pointer-events:none;background:rgba(255,255,255,.95);border:1px solid #888;border-radius:3px;padding:2px 6px;font:12px sans-serif;white-space:nowrap;z-index:5';
    var svgs = box.querySelectorAll('svg.main-svg');
    box.insertBefore(cv, svgs.length > 1 ? svgs[1] : null);  // under plotly's legend and colour bar layer
    box.appendChild(tip);
    var W = 0, H = 0, ctx = cv.getContext('2d'), hidden = [], drawnQuads = 0;
    function place(){
      var fl = div._fullLayout; if (!fl || !fl.xaxis) return;
      var l = fl.xaxis._offset, t = fl.yaxis._offset, w = fl.xaxis._length, h = fl.yaxis._length, r = window.devicePixelRatio || 1;
      cv.style.left = l + 'px'; cv.style.top = t + 'px'; cv.style.width = w + 'px'; cv.style.height = h + 'px';
      if (cv.width !== Math.round(w * r) || cv.height !== Math.round(h * r)) { cv.width = Math.round(w * r); cv.height = Math.round(h * r); }
      ctx.setTransform(r, 0, 0, r, 0, 0); W = w; H = h;
    }
    var cam, fit = null, FIT_MARGIN = 42;  // px left around the box for its tick labels
    function basis(az, el){
      var D = 4.2, ce = Math.cos(el), E = [D * ce * Math.cos(az), D * ce * Math.sin(az), D * Math.sin(el)];
      var f = [-E[0] / D, -E[1] / D, -E[2] / D], rl = Math.hypot(f[1], f[0]) || 1, rt = [f[1] / rl, -f[0] / rl, 0];
      var up = [rt[1] * f[2] - rt[2] * f[1], rt[2] * f[0] - rt[0] * f[2], rt[0] * f[1] - rt[1] * f[0]];
      return {E: E, f: f, r: rt, u: up, D: D, s: 1, cx: 0, cy: 0};
    }
    function camera(){
      if (!fit || fit.W !== W || fit.H !== H) {
        // the box's eight corners fill the canvas (less a margin) at the initial view; zoom scales from there
        cam = basis(az0, el0); var u0 = Infinity, u1 = -Infinity, w0 = Infinity, w1 = -Infinity;
        for (var c = 0; c < 8; c++) {
          var p = pt((c & 1 ? 1 : -1) * asp[0], (c & 2 ? 1 : -1) * asp[1], (c & 4 ? 1 : -1) * asp[2]);
          u0 = Math.min(u0, p[0]); u1 = Math.max(u1, p[0]); w0 = Math.min(w0, p[1]); w1 = Math.max(w1, p[1]);
        }
        var s0 = Math.max(1, Math.min((W - 2 * FIT_MARGIN) / (u1 - u0), (H - 2 * FIT_MARGIN) / (w1 - w0)));
        fit = {W: W, H: H, s: s0, cx: W / 2 - s0 * (u0 + u1) / 2, cy: H / 2 - s0 * (w0 + w1) / 2};
      }
      cam = basis(view.az, view.el);
      cam.s = view.zoom * fit.s; cam.cx = fit.cx; cam.cy = fit.cy;
    }
    function proj(x, y, z, out, k){  // box coordinates -> screen (px) and depth along the view
      var vx = x - cam.E[0], vy = y - cam.E[1], vz = z - cam.E[2];
      var d = vx * cam.f[0] + vy * cam.f[1] + vz * cam.f[2], g = cam.s * cam.D / d;
      out[0][k] = cam.cx + g * (vx * cam.r[0] + vy * cam.r[1] + vz * cam.r[2]);
      out[1][k] = cam.cy - g * (vx * cam.u[0] + vy * cam.u[1] + vz * cam.u[2]);
      out[2][k] = d;
    }
    var tmp = [new Float32Array(1), new Float32Array(1), new Float32Array(1)];
    function pt(x, y, z){ proj(x, y, z, tmp, 0); return [tmp[0][0], tmp[1][0], tmp[2][0]]; }
    function line(a, b, style, width){ ctx.strokeStyle = style; ctx.lineWidth = width; ctx.beginPath(); ctx.moveTo(a[0], a[1]); ctx.lineTo(b[0], b[1]); ctx.stroke(); }
    function walls(){
      // the three faces of the box farther from the eye, with grid lines at the ticks
      var A = asp, sgn = [cam.E[0] > 0 ? -1 : 1, cam.E[1] > 0 ? -1 : 1, cam.E[2] > 0 ? -1 : 1];
      var ticks = [niceTicks(rx[0], rx[1]).map(bx), niceTicks(ry[0], ry[1]).map(by), niceTicks(rz[0], rz[1]).map(bz)];
      for (var a = 0; a < 3; a++) {
        var b = (a + 1) % 3, c = (a + 2) % 3, P = function(ua, ub){ var v = [0, 0, 0]; v[a] = sgn[a] * A[a]; v[b] = ua; v[c] = ub; return pt(v[0], v[1], v[2]); };
        var q = [P(-A[b], -A[c]), P(A[b], -A[c]), P(A[b], A[c]), P(-A[b], A[c])];
        ctx.fillStyle = '#f3f4f7'; ctx.beginPath(); ctx.moveTo(q[0][0], q[0][1]); for (var i = 1; i < 4; i++) ctx.lineTo(q[i][0], q[i][1]); ctx.closePath(); ctx.fill();
        ticks[b].forEach(function(t){ line(P(t, -A[c]), P(t, A[c]), '#d9dbe0', 1); });
        ticks[c].forEach(function(t){ line(P(-A[b], t), P(A[b], t), '#d9dbe0', 1); });
      }
      return sgn;
    }
    function labels(sgn){
      var A = asp, c0 = pt(0, 0, 0);
      ctx.fillStyle = '#444'; ctx.font = '11px sans-serif';
      function edge(a, at, range, tickfn, title){  // tick labels along the edge of axis a at the other two coordinates `at`
        var vals = niceTicks(range[0], range[1]);
        function at3(u){ var v = at.slice(); v[a] = u; return pt(v[0], v[1], v[2]); }
        var m = at3(0), dx = m[0] - c0[0], dy = m[1] - c0[1], dl = Math.hypot(dx, dy) || 1; dx /= dl; dy /= dl;
        ctx.textAlign = dx < -0.3 ? 'right' : dx > 0.3 ? 'left' : 'center'; ctx.textBaseline = dy < -0.3 ? 'bottom' : dy > 0.3 ? 'top' : 'middle';
        vals.forEach(function(v){ var p = at3(tickfn(v)); ctx.fillText(fmt(v, '.3g'), p[0] + dx * 8, p[1] + dy * 8); });
        ctx.font = '12px sans-serif'; ctx.fillStyle = '#222';
        ctx.fillText(title, m[0] + dx * 34, m[1] + dy * 34);
        ctx.font = '11px sans-serif'; ctx.fillStyle = '#444';
      }
      var zb = sgn[2] * A[2];  // the floor (the back face in z), its front edges carry x and y
      edge(0, [0, -sgn[1] * A[1], zb], rx, bx, titles.x);
      edge(1, [-sgn[0] * A[0], 0, zb], ry, by, titles.y);
      var best = null;  // z along the vertical edge drawn leftmost on screen
      [[-1, -1], [1, -1], [1, 1], [-1, 1]].forEach(function(cn){ var p = pt(cn[0] * A[0], cn[1] * A[1], 0); if (!best || p[0] < best[0]) best = [p[0], cn]; });
      edge(2, [best[1][0] * A[0], best[1][1] * A[1], 0], rz, bz, titles.z);
    }
    function draw(){
      if (!W || !H) return;
      camera(); ctx.clearRect(0, 0, W, H);
      var sgn = walls();
      var out = [SX, SY, SD];
      for (var k = 0; k < mx * my; k++) proj(VX[k], VY[k], isFinite(VZ[k]) ? VZ[k] : 0, out, k);
      var n = 0;
      for (var q = 0; q < nq; q++) if (quadOk[q]) {
        var qi = q % (mx - 1), qj = (q - qi) / (mx - 1), a = qj * mx + qi;
        qd[q] = SD[a] + SD[a + 1] + SD[a + mx] + SD[a + mx + 1]; order[n++] = q;
      }
      var ord = order.subarray(0, n).sort(function(p, q){ return qd[q] - qd[p]; });
      var L = [-cam.f[0] + 0.3, -cam.f[1], -cam.f[2] + 0.6], ll = Math.hypot(L[0], L[1], L[2]);
      ord.forEach(function(q){  // far to near; lit from near the eye (Lambert, plus ambient)
        var qi = q % (mx - 1), qj = (q - qi) / (mx - 1), a = qj * mx + qi, b = a + 1, c = a + mx + 1, d = a + mx;
        var sh = 0.62 + 0.38 * Math.abs((QN[3 * q] * L[0] + QN[3 * q + 1] * L[1] + QN[3 * q + 2] * L[2]) / ll), col = quadColor[q];
        var st = 'rgb(' + Math.round(col[0] * sh) + ',' + Math.round(col[1] * sh) + ',' + Math.round(col[2] * sh) + ')';
        ctx.fillStyle = st; ctx.strokeStyle = st; ctx.lineWidth = 0.6;
        ctx.beginPath(); ctx.moveTo(SX[a], SY[a]); ctx.lineTo(SX[b], SY[b]); ctx.lineTo(SX[c], SY[c]); ctx.lineTo(SX[d], SY[d]); ctx.closePath();
        ctx.fill(); ctx.stroke();
      });
      drawnQuads = n;
      paths.forEach(function(P, k){
        var po = [P.sx, P.sy, P.depth], src = P.src;
        for (var i = 0; i < P.n; i++) proj(P.X[i], P.Y[i], isFinite(P.Z[i]) ? P.Z[i] : NaN, po, i);
        if (hidden[k] || !src.lines) return;
        ctx.setLineDash(DASH[src.dash] || []); ctx.strokeStyle = src.color; ctx.lineWidth = 3; ctx.lineJoin = 'round';
        ctx.beginPath(); var pen = false;
        for (var i = 0; i < P.n; i++) {
          if (!isFinite(P.sx[i]) || !isFinite(P.sy[i])) { pen = false; continue; }
          if (pen) ctx.lineTo(P.sx[i], P.sy[i]); else ctx.moveTo(P.sx[i], P.sy[i]); pen = true;
        }
        ctx.stroke(); ctx.setLineDash([]); ctx.fillStyle = src.color;
        for (var i = 0; i < P.n; i++) if (isFinite(P.sx[i])) { ctx.beginPath(); ctx.arc(P.sx[i], P.sy[i], 1.8, 0, 2 * Math.PI); ctx.fill(); }
      });
      paths.forEach(function(P, k){  // the step markers (slider) on top of everything
        if (hidden[k] || P.src.lines) return;
        var x = P.sx[0], y = P.sy[0], r = 6;
        if (!isFinite(x) || !isFinite(y)) return;
        ctx.fillStyle = P.src.color; ctx.strokeStyle = P.src.outline || '#000'; ctx.lineWidth = 1;
        ctx.beginPath(); ctx.moveTo(x, y - r); ctx.lineTo(x + r, y); ctx.lineTo(x, y + r); ctx.lineTo(x - r, y); ctx.closePath(); ctx.fill(); ctx.stroke();
      });
      labels(sgn);
    }
    function syncVisible(){
      var fd = div._fullData || [];
      paths.forEach(function(P, k){ var t = fd[P.src.trace]; hidden[k] = !!t && t.visible !== true; });
    }
    function redraw(){ place(); syncVisible(); draw(); }
    // hover: the nearest path point within 10 px, else the nearest surface vertex within 8 px (the front one)
    function nearest(mx0, my0){
      var best = null, bd = 100;
      paths.forEach(function(P, k){
        if (hidden[k]) return;
        for (var i = 0; i < P.n; i++) { var d = (P.sx[i] - mx0) * (P.sx[i] - mx0) + (P.sy[i] - my0) * (P.sy[i] - my0); if (d < bd) { bd = d; best = {path: k, i: i}; } }
      });
      if (best) return best;
      var bz0 = Infinity; bd = 64;
      for (var k = 0; k < mx * my; k++) if (isFinite(RAW[k])) {
        var d = (SX[k] - mx0) * (SX[k] - mx0) + (SY[k] - my0) * (SY[k] - my0);
        if (d < bd && SD[k] < bz0 + 0.05) { best = {vertex: k}; bz0 = SD[k]; }
      }
      return best;
    }
    function text(h){
      if (h.vertex !== undefined) { var i = h.vertex % mx, j = (h.vertex - i) / mx;
        return 'x ' + fmt(gx[ix[i]], '.4g') + '<br>y ' + fmt(gy[iy[j]], '.4g') + '<br>' + (surf.name || 'z') + ' ' + fmt(RAW[h.vertex], '.4g'); }
      var P = paths[h.path], src = P.src, cd = P.cd ? (Array.isArray(P.cd[0]) ? P.cd[h.i] : flat(P.cd)[h.i]) : null;
      var head = src.hovertemplate ? '' : (src.name || '') + '<br>';
      return head + hoverText(src.hovertemplate || 'x %{x:.4g}<br>y %{y:.4g}<br>z %{z:.4g}', P.x[h.i], P.y[h.i], P.z[h.i], cd);
    }
    var drag = null;
    cv.addEventListener('pointerdown', function(ev){ drag = [ev.clientX, ev.clientY, view.az, view.el]; cv.setPointerCapture(ev.pointerId); cv.style.cursor = 'grabbing'; tip.style.display = 'none'; });
    cv.addEventListener('pointerup', function(ev){ drag = null; cv.style.cursor = 'grab'; });
    cv.addEventListener('pointermove', function(ev){
      var rc = cv.getBoundingClientRect(), x = ev.clientX - rc.left, y = ev.clientY - rc.top;
      if (drag) {
        view.az = drag[2] - (ev.clientX - drag[0]) * 0.01;
        view.el = Math.max(-1.5, Math.min(1.5, drag[3] + (ev.clientY - drag[1]) * 0.01)); draw(); return;
      }
      var h = nearest(x, y);
      if (!h) { tip.style.display = 'none'; return; }
      tip.innerHTML = text(h);  // names arrive HTML-escaped from Python (plotly_render.esc), values are numbers
      tip.style.display = 'block';
      tip.style.left = (cv.offsetLeft + x + 14) + 'px'; tip.style.top = (cv.offsetTop + y + 10) + 'px';
    });
    cv.addEventListener('pointerleave', function(){ tip.style.display = 'none'; });
    cv.addEventListener('wheel', function(ev){ ev.preventDefault(); view.zoom = Math.max(0.3, Math.min(6, view.zoom * Math.exp(-ev.deltaY * 0.0015))); draw(); }, {passive: false});
    cv.addEventListener('dblclick', function(){ view.az = az0; view.el = el0; view.zoom = 1; draw(); });
    if (div.on) div.on('plotly_afterplot', redraw);  // a legend click (hide a path), a resize
    redraw();
    var api = {
      redraw: redraw,
      // the step slider: upd = {x: [[x]], y: [[y]], z: [[z]]}, one entry per trace in `traces` (plotly's restyle form)
      moveMarkers: function(upd, traces){
        traces.forEach(function(t, j){ paths.forEach(function(P){ if (P.src.trace === t) setPoints(P, upd.x[j], upd.y[j], upd.z[j]); }); });
        draw();
      },
      state: function(){ return {titles: titles, az: view.az, el: view.el, zoom: view.zoom, quads: drawnQuads, width: W, height: H,
        hidden: hidden.slice(), paths: paths.map(function(P){
          return {trace: P.src.trace, name: P.src.name, lines: P.src.lines, n: P.n, x: Array.from(P.sx), y: Array.from(P.sy),
                  data: [P.x[0], P.y[0], P.z[0]]}; })}; },
      vertexAt: function(i, j){ var k = j * mx + i; return {x: SX[k], y: SY[k], value: RAW[k], gx: gx[ix[i]], gy: gy[iy[j]]}; },
      hoverTextAt: function(x, y){ var h = nearest(x, y); return h ? text(h) : null; }
    };
    div._losslabScene = api;
    return api;
  };
})();
"""
