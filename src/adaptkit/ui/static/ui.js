// adaptkit ui: the helpers every page uses (no framework, no CDN).
"use strict";

const adaptkit = {
  /** POST JSON to a UI route; resolves to the reply's JSON (an {error} reply rejects with its line). */
  async post(url, data) {
    const reply = await fetch(url, {
      method: "POST",
      headers: {"Content-Type": "application/json"},
      body: JSON.stringify(data || {}),
      credentials: "same-origin",
    });
    const text = await reply.text();
    let body;
    try { body = JSON.parse(text); } catch (e) { body = {error: text.trim()}; }
    if (!reply.ok) throw Object.assign(new Error(body.error || reply.statusText), {body});
    return body;
  },

  async getJSON(url) {
    const reply = await fetch(url, {credentials: "same-origin"});
    if (!reply.ok) throw new Error((await reply.text()).trim());
    return reply.json();
  },

  /** Replace element's content with the HTML fragment at its data-poll URL, every `ms`. */
  pollFragment(element, ms, onUpdate) {
    const tick = async () => {
      try {
        const reply = await fetch(element.dataset.poll, {credentials: "same-origin"});
        if (reply.ok) { element.innerHTML = await reply.text(); if (onUpdate) onUpdate(); }
      } catch (e) { /* the server restarting: try again next tick */ }
      setTimeout(tick, ms);
    };
    setTimeout(tick, ms);
  },

  /** Call fn every `ms` (and once now), never twice at once. */
  every(ms, fn) {
    const tick = async () => { try { await fn(); } catch (e) { /* next tick */ } setTimeout(tick, ms); };
    tick();
  },

  say(element, text, isError) {
    element.textContent = text;
    element.classList.toggle("error", Boolean(isError));
  },

  /** Draw line series [{name, points: [[x, y]...]}] into an <svg viewBox="0 0 W H">. */
  lineChart(svg, series) {
    const [, , W, H] = svg.getAttribute("viewBox").split(" ").map(Number);
    const pad = {l: 58, r: 10, t: 10, b: 24};
    const all = series.flatMap(s => s.points);
    const ns = "http://www.w3.org/2000/svg";
    const el = (tag, attrs, text) => {
      const node = document.createElementNS(ns, tag);
      for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
      if (text !== undefined) node.textContent = text;
      svg.appendChild(node);
      return node;
    };
    svg.replaceChildren();
    el("rect", {x: pad.l, y: pad.t, width: W - pad.l - pad.r, height: H - pad.t - pad.b, class: "frame"});
    if (!all.length) { el("text", {x: W / 2, y: H / 2, class: "empty", "text-anchor": "middle"}, "nothing logged yet"); return; }
    let [x0, x1] = [Math.min(...all.map(p => p[0])), Math.max(...all.map(p => p[0]))];
    let [y0, y1] = [Math.min(...all.map(p => p[1])), Math.max(...all.map(p => p[1]))];
    if (x1 === x0) x1 = x0 + 1;
    if (y1 === y0) { y0 -= Math.abs(y0) * 0.1 || 1; y1 += Math.abs(y1) * 0.1 || 1; }
    const sx = x => pad.l + (x - x0) / (x1 - x0) * (W - pad.l - pad.r);
    const sy = y => H - pad.b - (y - y0) / (y1 - y0) * (H - pad.t - pad.b);
    const fmt = v => (Math.abs(v) < 1e-2 && v !== 0) ? v.toExponential(1) : v.toPrecision(3);
    for (const v of [y0, (y0 + y1) / 2, y1]) {
      el("text", {x: pad.l - 4, y: sy(v) + 4, "text-anchor": "end", class: "tick"}, fmt(v));
      el("line", {x1: pad.l, x2: W - pad.r, y1: sy(v), y2: sy(v), class: "grid"});
    }
    el("text", {x: sx(x0), y: H - 6, "text-anchor": "start", class: "tick"}, `step ${x0}`);
    el("text", {x: sx(x1), y: H - 6, "text-anchor": "end", class: "tick"}, `step ${x1}`);
    for (const s of series) {
      if (!s.points.length) continue;
      el("polyline", {points: s.points.map(p => `${sx(p[0]).toFixed(1)},${sy(p[1]).toFixed(1)}`).join(" "),
                      class: `series ${s.name}`, "data-points": s.points.length});
    }
  },
};
