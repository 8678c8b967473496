"use strict";
// Compare: the chosen runs' report, made by the same code as `adaptkit compare`.
document.addEventListener("DOMContentLoaded", () => {
  const message = document.getElementById("message");
  const report = document.getElementById("report");
  document.getElementById("compare").addEventListener("submit", async event => {
    event.preventDefault();
    const runs = [...document.querySelectorAll("input[name=run]:checked")].map(box => box.value);
    adaptkit.say(message, "comparing…");
    try {
      const {url} = await adaptkit.post("/api/compare", {runs});
      adaptkit.say(message, "");
      report.src = url;
      report.hidden = false;
    } catch (e) {
      adaptkit.say(message, e.message, true);
    }
  });
});
