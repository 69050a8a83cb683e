// onnxpy view: pan, zoom, search and node details over the SVG laid out in Python.
(function () {
  "use strict";
  const data = JSON.parse(document.getElementById("onnxpy-data").textContent);
  const svg = document.getElementById("graph");
  const canvas = document.getElementById("canvas");
  const panel = document.getElementById("details");
  const search = document.getElementById("search");
  const count = document.getElementById("count");
  const full = { w: svg.viewBox.baseVal.width, h: svg.viewBox.baseVal.height };
  let view = { x: 0, y: 0, w: full.w, h: full.h };

  function apply() {
    svg.setAttribute("viewBox", `${view.x} ${view.y} ${view.w} ${view.h}`);
  }
  function fitWidth() {
    const box = canvas.getBoundingClientRect();
    svg.setAttribute("width", box.width);
    svg.setAttribute("height", box.height);
    const scale = Math.max(full.w / box.width, 1);
    view = { x: 0, y: 0, w: box.width * scale, h: box.height * scale };
    apply();
  }
  function centreOn(g) {
    const r = g.querySelector("rect");
    const cx = r.x.baseVal.value + r.width.baseVal.value / 2;
    const cy = r.y.baseVal.value + r.height.baseVal.value / 2;
    const box = canvas.getBoundingClientRect();
    if (view.w > box.width * 2) {
      view.h = view.h * box.width / view.w;
      view.w = box.width;
    }
    view.x = cx - view.w / 2;
    view.y = cy - view.h / 2;
    apply();
  }

  canvas.addEventListener("wheel", (ev) => {
    ev.preventDefault();
    const box = canvas.getBoundingClientRect();
    const f = ev.deltaY > 0 ? 1.15 : 1 / 1.15;
    const px = view.x + (ev.clientX - box.left) / box.width * view.w;
    const py = view.y + (ev.clientY - box.top) / box.height * view.h;
    view.w *= f; view.h *= f;
    view.x = px - (px - view.x) * f;
    view.y = py - (py - view.y) * f;
    apply();
  }, { passive: false });
  let drag = null;
  canvas.addEventListener("mousedown", (ev) => {
    drag = { x: ev.clientX, y: ev.clientY, vx: view.x, vy: view.y, moved: false };
  });
  window.addEventListener("mousemove", (ev) => {
    if (!drag) return;
    const box = canvas.getBoundingClientRect();
    const dx = ev.clientX - drag.x, dy = ev.clientY - drag.y;
    if (Math.abs(dx) + Math.abs(dy) > 3) drag.moved = true;
    view.x = drag.vx - dx / box.width * view.w;
    view.y = drag.vy - dy / box.height * view.h;
    apply();
  });
  window.addEventListener("mouseup", () => { setTimeout(() => { drag = null; }, 0); });

  function esc(s) {
    return String(s).replace(/[&<>"]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" }[c]));
  }
  function valueRows(list) {
    return list.map((v) => `<tr><td class="v">${esc(v.name)}</td><td>${esc(v.type || "")}` +
      (v.initializer ? `<br><span class="init">initializer ${esc(v.initializer)}</span>` : "") +
      "</td></tr>").join("");
  }
  let selected = null;
  function show(id) {
    const d = data.details[id];
    if (selected) selected.classList.remove("selected");
    selected = document.getElementById("n" + id);
    selected.classList.add("selected");
    const attrs = Object.entries(d.attributes);
    panel.innerHTML =
      `<h2 id="detail-name">${esc(d.name)}</h2><p class="op">${esc(d.op)}` +
      (d.status ? ` <span class="status ${esc(d.status)}">${esc(d.status)}</span>` : "") + "</p>" +
      (d.time_ms !== undefined ? `<p class="time">${d.time_ms.toFixed(3)} ms per run</p>` : "") +
      "<h3>Attributes</h3>" + (attrs.length ? '<table class="attributes">' + attrs.map(([k, v]) =>
        `<tr><td class="k">${esc(k)}</td><td>${esc(v)}</td></tr>`).join("") + "</table>" :
        "<p class='none'>none</p>") +
      `<h3>Inputs</h3><table>${valueRows(d.inputs)}</table>` +
      `<h3>Outputs</h3><table>${valueRows(d.outputs)}</table>`;
  }
  document.querySelectorAll("g.node").forEach((g) => {
    g.addEventListener("click", () => {
      if (drag && drag.moved) return;
      show(Number(g.dataset.id));
    });
  });

  let matches = [], current = -1;
  search.addEventListener("input", () => {
    const q = search.value.trim().toLowerCase();
    matches = [];
    current = -1;
    document.querySelectorAll("g.node").forEach((g) => {
      const d = data.details[Number(g.dataset.id)];
      const hit = q !== "" && (d.name.toLowerCase().includes(q) || d.op.toLowerCase().includes(q));
      g.classList.toggle("match", hit);
      if (hit) matches.push(g);
    });
    count.textContent = q ? `${matches.length} match${matches.length === 1 ? "" : "es"}` : "";
  });
  search.addEventListener("keydown", (ev) => {
    if (ev.key !== "Enter" || !matches.length) return;
    current = (current + 1) % matches.length;
    centreOn(matches[current]);
    show(Number(matches[current].dataset.id));
  });
  document.getElementById("fit").addEventListener("click", fitWidth);
  window.addEventListener("resize", fitWidth);
  fitWidth();
})();
