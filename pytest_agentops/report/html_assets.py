"""The HTML report's inline style sheet and script (no file or network fetch: the page's Content-Security-Policy
forbids both, so a report that tried would show errors in the browser's console, which the suite checks).

The script only sorts and filters the trial tables and opens a failing trial's trace from its row; the page
is complete without it (charts are inline SVG, every table is rendered in the HTML).
"""

CSP = "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:"

CSS = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;color:#1d2330;background:#f6f7f9}
header,section.campaign{max-width:1180px;margin:0 auto;padding:12px 20px}
header h1{font-size:22px;margin:12px 0 4px}
section.campaign{background:#fff;border:1px solid #dde1e7;border-radius:8px;margin-bottom:18px}
h2{font-size:19px;margin:6px 0}h3{font-size:15px;margin:18px 0 6px;color:#38404f}
.meta,.note{color:#5b6475}.warning{color:#a4000f;font-weight:600}
.badge{display:inline-block;padding:1px 8px;border-radius:10px;font-size:12px;font-weight:700;vertical-align:middle}
.PASS,.pass,.completed{background:#dff5e3;color:#11602a}.FAIL,.fail{background:#fde2e1;color:#a4000f}
.XFAIL,.inconclusive,.unclear{background:#fff3cd;color:#7a5600}
nav a{margin-right:12px;text-decoration:none;color:#1d4ed8}
table{border-collapse:collapse;font-size:13px}th,td{padding:3px 8px;border-bottom:1px solid #eceef2;text-align:left}
th{background:#f1f3f6}.scroll th{position:sticky;top:0}table.trials th{cursor:pointer;user-select:none}
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}
.charts{display:flex;flex-wrap:wrap;gap:14px}
figure.chart{margin:0;border:1px solid #eceef2;border-radius:6px;padding:6px;background:#fff}
figcaption{font-size:12px;color:#38404f;margin-bottom:2px}
svg .axis{stroke:#6b7280;stroke-width:1}svg .grid{stroke:#eceef2;stroke-width:1}
svg .tick,svg .axis-label{font-size:10px;fill:#5b6475}
svg .series{fill:none;stroke-width:2}svg .series.estimate{stroke:#1d4ed8}
svg .series.bound{stroke:#7c3aed;stroke-dasharray:5 3}
svg .marker{stroke-width:1.5}svg .marker.threshold{stroke:#dc2626}
svg .marker.bound{stroke:#7c3aed;stroke-dasharray:5 3}
svg .series.upper{stroke:#c026d3}svg .marker.estimate{stroke:#1d4ed8;stroke-dasharray:2 2}
svg .bar{fill:#93c5fd}
.legend{font-size:11px;color:#5b6475}.key{margin-right:10px}.key:before{content:"";display:inline-block;
width:14px;height:3px;margin-right:4px;vertical-align:middle;background:#1d4ed8}
.key.bound:before{background:#7c3aed}.key.upper:before{background:#c026d3}.key.threshold:before{background:#dc2626}.key.bar:before{background:#93c5fd;
height:8px}
.filters{margin:4px 0 8px;display:flex;gap:10px;align-items:center}
.filters input[type=search]{width:280px;padding:3px 6px}
.scroll{max-height:420px;overflow:auto;border:1px solid #eceef2}
tr.bad td:first-child{border-left:3px solid #dc2626}
details.trace{margin:4px 0;border:1px solid #eceef2;border-radius:6px;padding:4px 8px}
details.trace summary{cursor:pointer}
pre{background:#f6f7f9;padding:6px 8px;overflow:auto;font-size:12px;margin:4px 0}
code.cmd{user-select:all}
"""

JS = """
(function () {
  function cellValue(row, col) {
    var text = row.cells[col].getAttribute('data-v') || row.cells[col].textContent;
    var num = parseFloat(text);
    return isNaN(num) || !/^-?[0-9.]/.test(text) ? text.toLowerCase() : num;
  }
  function sortBy(table, col) {
    var body = table.tBodies[0];
    var dir = table.getAttribute('data-sort') === String(col) ? -1 : 1;
    table.setAttribute('data-sort', dir === 1 ? String(col) : '');
    var rows = Array.prototype.slice.call(body.rows);
    rows.sort(function (a, b) {
      var x = cellValue(a, col), y = cellValue(b, col);
      if (typeof x !== typeof y) { x = String(x); y = String(y); }
      return x < y ? -dir : x > y ? dir : 0;
    });
    rows.forEach(function (r) { body.appendChild(r); });
  }
  function filter(box) {
    var table = box.nextElementSibling.querySelector('table.trials');
    var text = box.querySelector('input[type=search]').value.toLowerCase();
    var outcome = box.querySelector('select').value;
    var shown = 0, rows = table.tBodies[0].rows;
    for (var i = 0; i < rows.length; i++) {
      var r = rows[i];
      var ok = (!text || r.textContent.toLowerCase().indexOf(text) >= 0) &&
               (outcome === '' || (outcome === 'not-passed' ? r.classList.contains('bad')
                                                           : r.getAttribute('data-outcome') === outcome));
      r.hidden = !ok;
      if (ok) { shown++; }
    }
    box.querySelector('.count').textContent = shown + ' of ' + rows.length + ' trials';
  }
  document.querySelectorAll('table.trials').forEach(function (table) {
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (th, col) {
      th.addEventListener('click', function () { sortBy(table, col); });
    });
  });
  document.querySelectorAll('.filters').forEach(function (box) {
    box.querySelector('input[type=search]').addEventListener('input', function () { filter(box); });
    box.querySelector('select').addEventListener('change', function () { filter(box); });
    filter(box);
  });
  document.querySelectorAll('a.trace-link').forEach(function (a) {
    a.addEventListener('click', function () {
      var target = document.getElementById(a.getAttribute('href').slice(1));
      if (target) { target.open = true; }
    });
  });
})();
"""
