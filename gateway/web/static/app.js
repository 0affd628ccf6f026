// risgate web UI: a little vanilla JavaScript. Changes go to the JSON API with the
// session's CSRF token in the X-CSRF-Token header; nothing is loaded from elsewhere.
"use strict";

function csrf() { return document.body.dataset.csrf || ""; }

function flash(text) { document.getElementById("flash").textContent = text; }

async function send(url, options) {
  options.headers = Object.assign({ "X-CSRF-Token": csrf() }, options.headers || {});
  options.credentials = "same-origin";
  const response = await fetch(url, options);
  let body = null;
  try { body = await response.json(); } catch (e) { body = null; }
  return { ok: response.ok, status: response.status, body: body };
}

function detail(result) {
  const d = result.body && result.body.detail;
  return typeof d === "string" ? d : JSON.stringify(result.body);
}

function after(result) {
  if (result.body && result.body.redirect) { window.location = result.body.redirect; return; }
  if (result.ok) { window.location.reload(); } else { flash(result.status + ": " + detail(result)); }
}

document.addEventListener("submit", async (event) => {
  const form = event.target;
  if (form.classList.contains("js-form")) {
    event.preventDefault();
    const data = new FormData(form);
    let options = { method: "POST", body: data };
    if (form.classList.contains("js-json")) {
      const obj = {};
      data.forEach((v, k) => { if (v !== "") { obj[k] = v; } });
      options = { method: "POST", body: JSON.stringify(obj), headers: { "Content-Type": "application/json" } };
    }
    after(await send(form.getAttribute("action"), options));
  } else if (form.classList.contains("order-search")) {
    event.preventDefault();
    await searchOrders(form);
  }
});

document.addEventListener("click", async (event) => {
  const button = event.target.closest(".js-post");
  if (!button) { return; }
  event.preventDefault();
  after(await send(button.dataset.url, {
    method: "POST", body: button.dataset.body || "{}", headers: { "Content-Type": "application/json" },
  }));
});

async function searchOrders(form) {
  const results = form.nextElementSibling;
  const pid = form.elements.patient_id.value.trim();
  const url = "/api/orders?limit=20" + (pid ? "&patient_id=" + encodeURIComponent(pid) : "");
  const response = await fetch(url, { credentials: "same-origin" });
  results.textContent = "";
  if (!response.ok) { results.textContent = response.status; return; }
  const page = await response.json();
  for (const order of page.items) {
    for (const p of order.procedures) {
      const row = document.createElement("div");
      row.className = "order-hit";
      row.dataset.accession = p.accession_number;
      row.textContent = p.accession_number + " · " + order.patient_name + " · " + p.procedure_text + " ";
      const link = document.createElement("button");
      link.type = "button";
      link.className = "link-order";
      link.textContent = results.dataset.linkLabel;
      link.addEventListener("click", () => linkStudy(form.dataset.study, p.accession_number, row, results));
      row.appendChild(link);
      results.appendChild(row);
    }
  }
  if (!results.children.length) { results.textContent = "-"; }
}

async function linkStudy(studyUid, accession, row, results) {
  const result = await send("/api/studies/" + encodeURIComponent(studyUid) + "/link", {
    method: "POST", body: JSON.stringify({ accession_number: accession }),
    headers: { "Content-Type": "application/json" },
  });
  if (result.ok) {
    row.textContent = results.dataset.linkedLabel + ": " + accession;
    row.classList.add("linked");
  } else {
    flash(result.status + ": " + detail(result));
  }
}
