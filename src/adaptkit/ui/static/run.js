"use strict";
// One run, live: the summary (server-rendered), the curves (metrics.jsonl as JSON), the sample grids.
document.addEventListener("DOMContentLoaded", () => {
  const name = document.getElementById("run-name").dataset.run;
  const api = `/api/runs/${encodeURIComponent(name)}`;
  const message = document.getElementById("message");
  const samples = document.getElementById("samples");
  const report = document.getElementById("report");
  const shown = new Set();

  adaptkit.pollFragment(document.getElementById("summary"), 1500);

  adaptkit.every(1500, async () => {
    const {rows} = await adaptkit.getJSON(`${api}/metrics`);
    const series = key => ({name: key, points: rows.filter(r => key in r).map(r => [r.step, r[key]])});
    adaptkit.lineChart(document.getElementById("loss-chart"), [series("loss"), series("val_loss")]);
    adaptkit.lineChart(document.getElementById("lr-chart"), [series("lr")]);
  });

  adaptkit.every(2000, async () => {
    const {status} = await adaptkit.getJSON(api);
    for (const file of status.samples) {  // newest first; names are step-NNNNNN.png and before-after.png
      if (shown.has(file)) continue;
      shown.add(file);
      const figure = document.createElement("figure");
      const img = document.createElement("img");
      img.src = `/files/${encodeURIComponent(name)}/samples/${encodeURIComponent(file)}`;
      img.alt = `sample grid ${file}`;
      const caption = document.createElement("figcaption");
      caption.textContent = file.replace(/\.png$/, "");
      figure.append(img, caption);
      samples.prepend(figure);
    }
    if (status.has_report && report.hidden) {
      report.src = `/files/${encodeURIComponent(name)}/eval/report.html`;
      report.hidden = false;
      document.getElementById("report-link").hidden = false;
      document.getElementById("report-none").textContent = "";
    }
  });

  const act = (button, url, data) => button.addEventListener("click", async () => {
    button.disabled = true;
    try {
      const reply = await adaptkit.post(url, data ? data() : {});
      adaptkit.say(message, reply.message || (reply.path ? `wrote ${reply.path}` : `queued: ${reply.job.command}`));
    } catch (e) {
      adaptkit.say(message, e.message, true);
    } finally {
      button.disabled = false;
    }
  });
  act(document.getElementById("stop"), `${api}/stop`);
  act(document.getElementById("resume"), `${api}/resume`, () => {
    const steps = parseInt(document.getElementById("resume-steps").value, 10);
    return Number.isFinite(steps) ? {steps} : {};
  });
  act(document.getElementById("export"), `${api}/export`, () => ({
    format: document.getElementById("export-format").value,
    checkpoint: document.getElementById("export-checkpoint").value,
    overwrite: document.getElementById("export-overwrite").checked,
  }));
});
