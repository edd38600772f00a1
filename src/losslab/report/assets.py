"""The report page's stylesheet and script (kept apart from the page assembly in ``html``).

The script draws every plot from its embedded spec, resolving ``{"$b": i}`` references into
the page's binary array table (``binary.ArrayTable``) as plotly.js typed-array specs; drives
the step sliders; and makes the downloads in the browser (a Blob, so they work from file://):
the JSON is the figure's data with the arrays decoded (NaN as null), the CSV is written row by
row exactly as ``serialize.figure_csv`` writes it, floats spelled as Python's ``repr`` does.
"""

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0 auto;max-width:1400px;padding:1em 2em;color:#222}
h1{margin-bottom:.2em} h2{border-bottom:2px solid #ddd;padding-bottom:.2em;margin-top:2em}
nav ul{columns:2;font-size:.95em} .meta{color:#666;font-size:.9em}
figure.fig{content-visibility:auto;contain-intrinsic-size:auto 640px;display:flex;flex-wrap:wrap;gap:1em;margin:1.2em 0;padding:.8em;border:1px solid #e4e4e4;border-radius:6px}
.plotcol{flex:3 1 560px;min-width:0} .side{flex:1 1 280px;min-width:0;max-width:100%;font-size:.85em;overflow:auto;max-height:640px}
.plot{width:100%;min-height:300px} figcaption{color:#333;font-size:.92em}
.tablewrap{max-width:100%;overflow-x:auto}
table{border-collapse:collapse;margin:.4em 0;max-width:100%} th,td{border-bottom:1px solid #eee;padding:2px 8px;text-align:left;vertical-align:top;overflow-wrap:break-word;word-break:normal}
th{font-weight:600;color:#444} caption{text-align:left;font-weight:600;color:#666;font-size:.9em}
td[title]{cursor:help}
details summary{cursor:pointer;color:#555;font-weight:600;font-size:.92em;margin:.3em 0}
table.summary{font-size:.9em} .error{background:#fdecea;color:#b00020;border:1px solid #b00020;border-radius:5px;padding:.6em 1em}
.error pre{white-space:pre-wrap;margin:.3em 0 0 0;font-size:.85em;color:#b00020}
ul.checks{list-style:none;padding-left:0} li.ok{color:#1b7a1b} li.bad{color:#b00020}
.downloads button,.slider button{margin:.3em .3em 0 0;padding:3px 10px;border:1px solid #aaa;background:#f6f6f6;border-radius:4px;cursor:pointer}
.slider{display:flex;align-items:center;gap:.6em;margin:.3em 0} .slider input{width:320px;max-width:60%;vertical-align:middle}
.muted{color:#999} .plot-error{color:#b00020;padding:1em;border:1px dashed #b00020}
"""

JS = r"""
(function(){
  function parse(id){ var el = document.getElementById(id); return el ? JSON.parse(el.textContent) : null; }
  var pageArrays = parse('page-arrays') || [];
  function table(fid){ return parse(fid + '-arrays') || pageArrays; }
  var TYPES = {f8: Float64Array, f4: Float32Array, i4: Int32Array, u1: Uint8Array};
  function isRef(v){ return v !== null && typeof v === 'object' && !Array.isArray(v) && typeof v.$b === 'number'; }
  // a reference as plotly.js's typed-array spec (plotly decodes it)
  function forPlot(v, B){
    if (isRef(v)) { var b = B[v.$b]; return {dtype: b.dtype, bdata: b.bdata, shape: b.shape}; }
    if (Array.isArray(v)) return v.map(function(e){ return forPlot(e, B); });
    if (v !== null && typeof v === 'object') { var o = {}; for (var k in v) o[k] = forPlot(v[k], B); return o; }
    return v;
  }
  // a reference decoded: {v: flat values, shape: [..], int: bool}
  function decode(b){
    var bin = atob(b.bdata), u8 = new Uint8Array(bin.length);
    for (var i = 0; i < bin.length; i++) u8[i] = bin.charCodeAt(i);
    var shape = String(b.shape).split(',').map(function(s){ return parseInt(s, 10); });
    return {v: Array.from(new TYPES[b.dtype](u8.buffer)), shape: shape, int: b.dtype[0] !== 'f'};
  }
  function nest(flat, shape){
    if (shape.length <= 1) return flat;
    var n = shape[0], step = flat.length / n, out = [];
    for (var i = 0; i < n; i++) out.push(nest(flat.slice(i * step, (i + 1) * step), shape.slice(1)));
    return out;
  }
  // the figure's data with every reference decoded; `cols` keeps, per decoded array, whether it holds ints
  function forData(v, B){
    if (isRef(v)) { var d = decode(B[v.$b]); var a = nest(d.v, d.shape); a.isInt = d.int; a.flat = d.v; return a; }
    if (Array.isArray(v)) return v.map(function(e){ return forData(e, B); });
    if (v !== null && typeof v === 'object') { var o = {}; for (var k in v) o[k] = forData(v[k], B); return o; }
    return v;
  }
  // Python's repr of a float: shortest round-trip digits, exponent below 1e-4 and from 1e16
  function pyfloat(x){
    if (x !== x) return 'nan';
    if (!isFinite(x)) return x > 0 ? 'inf' : '-inf';
    if (x === 0) return 1 / x < 0 ? '-0.0' : '0.0';
    var m = x.toExponential().split('e'), exp = parseInt(m[1], 10);
    var neg = m[0][0] === '-', dg = m[0].replace('-', '').replace('.', ''), s;
    if (exp < -4 || exp >= 16) {
      var ae = Math.abs(exp);
      s = (dg.length > 1 ? dg[0] + '.' + dg.slice(1) : dg) + 'e' + (exp < 0 ? '-' : '+') + (ae < 10 ? '0' : '') + ae;
    } else if (exp >= 0) {
      s = dg.length > exp + 1 ? dg.slice(0, exp + 1) + '.' + dg.slice(exp + 1) : dg + '0'.repeat(exp + 1 - dg.length) + '.0';
    } else {
      s = '0.' + '0'.repeat(-exp - 1) + dg;
    }
    return (neg ? '-' : '') + s;
  }
  // a decoded array carries its values in .flat (forData); a plain list (strings: bar categories) is
  // flat itself -- and has Array.prototype.flat, a function, which `a.flat || a` took for the values
  function flatOf(a){ return typeof a.flat === 'function' ? a : a.flat; }
  function cell(a, i){
    if (a === null || a === undefined) return '';
    var flat = flatOf(a);
    if (i >= flat.length) return '';
    var v = flat[i];
    if (v === null || v === undefined) return '';
    if (typeof v === 'boolean') return v ? 'True' : 'False';
    if (typeof v === 'number') return a.isInt ? String(v) : pyfloat(v);
    return String(v);
  }
  function q(s){ s = String(s); return /[",\r\n]/.test(s) ? '"' + s.replace(/"/g, '""') + '"' : s; }
  function csv(d){
    var rows = ['part,name,index,x,y,z,band_lo,band_hi,step,off_plane'];
    function row(r){ rows.push(r.map(q).join(',')); }
    (d.series || []).forEach(function(s){
      var n = flatOf(s.y).length;
      for (var i = 0; i < n; i++) row(['series', s.name, i, cell(s.x, i), cell(s.y, i), '', cell(s.band_lo, i), cell(s.band_hi, i), '', '']);
    });
    if (d.grid) {
      var gx = d.grid.x, gy = d.grid.y, gz = d.grid.z, nx = flatOf(gx).length, ny = flatOf(gy).length, k = 0;
      var zf = typeof gz.flat === 'function' ? [].concat.apply([], gz) : gz.flat; zf.isInt = gz.isInt;
      for (var j = 0; j < ny; j++) for (var i = 0; i < nx; i++) {
        row(['grid', d.grid.z_label, k, cell(gx, i), cell(gy, j), cell(zf, j * nx + i), '', '', '', '']); k++;
      }
    }
    (d.paths || []).forEach(function(p){
      var n = flatOf(p.x).length;
      for (var i = 0; i < n; i++) row(['path', p.name, i, cell(p.x, i), cell(p.y, i), cell(p.z, i), '', '', cell(p.steps, i), cell(p.off_plane, i)]);
    });
    (d.hlines || []).forEach(function(h){ row(['hline', h[0], 0, '', pyfloat(Number(h[1])), '', '', '', '', '']); });
    return rows.join('\n') + '\n';
  }
  function download(fid, format){
    var d = forData(parse(fid + '-data'), table(fid));
    if (format === 'csv') return csv(d);
    return JSON.stringify(d, function(k, v){ return typeof v === 'number' && !isFinite(v) ? null : v; }, 1);
  }
  window.losslabDownload = download;  // for tests and for scripts driving the page
  var divs = document.querySelectorAll('div.plot');
  if (typeof Plotly === 'undefined') {
    divs.forEach(function(d){ d.innerHTML = '<p class="plot-error">plotly.js did not load (expected plotly-cartesian.min.js beside this page); rebuild the report with --standalone to inline it.</p>'; });
    return;
  }
  var template = parse('plotly-template'), drawn = 0;
  function draw(div){
    var t0 = performance.now(), B = table(div.id);
    var spec = parse(div.id + '-spec');
    spec.layout.template = template;
    var scene = spec.scene3d ? forData(spec.scene3d, B) : null;
    Plotly.newPlot(div, forPlot(spec.data, B), spec.layout,
                   scene ? {responsive: true, displayModeBar: false} : {responsive: true, displaylogo: false});
    if (scene) window.losslabScene(div, scene);
    div.dataset.renderMs = (performance.now() - t0).toFixed(1);
    div.dataset.drawnAt = performance.now().toFixed(0);  // ms since navigation: when each plot was drawn
    div.dataset.drawOrder = String(drawn++);
    var sl = spec.slider;
    if (!sl) return;
    sl.points = forData(sl.points, B);
    var input = document.getElementById(div.id + '-slider');
    var out = document.getElementById(div.id + '-step');
    function show(i){
      var upd = {x: [], y: []}, three = sl.points[0].z !== null;
      if (three) upd.z = [];
      sl.points.forEach(function(p){ upd.x.push([p.x[i]]); upd.y.push([p.y[i]]); if (three) upd.z.push([p.z[i]]); });
      if (div._losslabScene) div._losslabScene.moveMarkers(upd, sl.traces);
      else Plotly.restyle(div, upd, sl.traces);
      out.textContent = sl.steps[i];
    }
    input.addEventListener('input', function(){ show(parseInt(input.value, 10)); });
    var play = document.querySelector('button.play[data-for="' + div.id + '"]'), timer = null;
    play.addEventListener('click', function(){
      if (timer) { clearInterval(timer); timer = null; play.textContent = '▶ play'; return; }
      play.textContent = '❚❚ pause';
      if (parseInt(input.value, 10) >= sl.steps.length - 1) input.value = 0;
      timer = setInterval(function(){
        var i = parseInt(input.value, 10) + 1;
        if (i >= sl.steps.length) { clearInterval(timer); timer = null; play.textContent = '▶ play'; return; }
        input.value = i; show(i);
      }, 80);
    });
  }
  // Draw in slices of ~150 ms, yielding to the browser between slices: drawn in one go, the tour's
  // ~100 plots held the main thread for 9-12 s (on this project's 2-core VM) and nothing showed or
  // scrolled until all were done; now the plots at or below the visible part of the page come first
  // (the first screen in ~1 s), then the rest in page order. A MessageChannel yields without the 4 ms
  // clamp of nested setTimeout calls; figures off screen skip rendering (content-visibility in CSS),
  // so the frames between slices stay cheap (measured: benchmarks/RESULTS.md, #17).
  var SLICE_MS = 150, pending = Array.prototype.slice.call(divs);
  var chan = new MessageChannel();
  // The drawing order: the pending plots at or below the top of the visible part of the page in page
  // order, then those above it
  function plan(){
    var now = [], above = [];
    pending.forEach(function(d){ (d.getBoundingClientRect().bottom >= 0 ? now : above).push(d); });
    return now.concat(above);
  }
  // planned again only after a scroll (reading every pending plot's position forces a layout: once per
  // slice it was ~2 % of the tour report's render time)
  var replan = true;
  window.addEventListener('scroll', function(){ replan = true; }, {passive: true});
  function pump(){
    var t = performance.now();
    if (replan) { pending = plan(); replan = false; }
    while (pending.length && performance.now() - t < SLICE_MS) {
      var div = pending.shift();
      try { draw(div); } catch (e) {  // one bad plot must not keep the others from being drawn
        console.error('losslab: could not draw ' + div.id + ': ' + e);
        div.innerHTML = '<p class="plot-error">this plot could not be drawn: ' + String(e).replace(/[<>&]/g, '') + '</p>';
      }
    }
    if (pending.length) chan.port2.postMessage(0);
    else { document.body.dataset.plotsDrawn = String(divs.length); document.dispatchEvent(new Event('losslab:drawn')); }
  }
  chan.port1.onmessage = pump;
  // opened at an anchor (tour.html#saddles): go there now, so that its plots are the first drawn
  // (the browser's own scroll to the fragment may come only after the first slice)
  var target = location.hash.length > 1 && document.getElementById(decodeURIComponent(location.hash.slice(1)));
  if (target) target.scrollIntoView();
  pump();
  document.querySelectorAll('button.dl').forEach(function(b){
    b.addEventListener('click', function(){
      var blob = new Blob([download(b.dataset.fig, b.dataset.format)], {type: b.dataset.type});
      var a = document.createElement('a');
      a.href = URL.createObjectURL(blob); a.download = b.dataset.name;
      document.body.appendChild(a); a.click();
      setTimeout(function(){ URL.revokeObjectURL(a.href); a.remove(); }, 1000);
    });
  });
})();
"""
