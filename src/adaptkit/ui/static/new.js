"use strict";
// The recipe editor: validated as you type (the CLI's own checks), launched into the queue.
document.addEventListener("DOMContentLoaded", () => {
  const toml = document.getElementById("toml");
  const name = document.getElementById("name");
  const out = document.getElementById("validation");
  const launch = document.getElementById("launch");
  let timer = null;
  let asked = 0;

  const show = result => {
    out.replaceChildren();
    out.className = result.ok ? "ok" : "error";
    if (result.ok) {
      out.textContent = `valid: the run goes to ${result.run_dir}`;
      return;
    }
    const list = document.createElement("ul");
    for (const line of result.errors) {
      const item = document.createElement("li");
      item.textContent = `error: ${line}`;
      list.append(item);
    }
    out.append(list);
  };

  const validate = async () => {
    const mine = ++asked;
    out.dataset.pending = "1";
    try {
      const result = await adaptkit.post("/api/validate", {name: name.value, toml: toml.value});
      if (mine === asked) show(result);
    } catch (e) {
      if (mine === asked) show({ok: false, errors: [e.message]});
    } finally {
      if (mine === asked) delete out.dataset.pending;
    }
  };
  const soon = () => { clearTimeout(timer); timer = setTimeout(validate, 400); };
  toml.addEventListener("input", soon);
  name.addEventListener("input", soon);
  validate();

  document.getElementById("draft").addEventListener("submit", async event => {
    event.preventDefault();
    launch.disabled = true;
    try {
      const reply = await adaptkit.post("/api/launch", {
        name: name.value, toml: toml.value, overwrite: document.getElementById("overwrite").checked,
      });
      window.location.href = reply.url;
    } catch (e) {
      show({ok: false, errors: e.body && e.body.errors ? e.body.errors : [e.message]});
      launch.disabled = false;
    }
  });
});
