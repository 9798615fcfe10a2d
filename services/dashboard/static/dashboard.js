// Working friction flags from the dashboard: each form posts its note to the read API
// (POST /v1/friction/{flag_id}/acknowledge|resolve|reopen, with the session cookie) and
// shows the flag's new status. Everything else on the dashboard works without a script.
"use strict";

const LABELS = { acknowledge: "Acknowledge", resolve: "Resolve", reopen: "Reopen" };

function detailOf(body, response) {
  if (typeof body.detail === "string") return body.detail;
  if (Array.isArray(body.detail)) return body.detail.map((d) => d.msg).join("; ");
  return `the server answered ${response.status}`;
}

function setButtons(form, status) {
  const table = form.closest("table[data-actions]");
  const actions = table ? JSON.parse(table.dataset.actions)[status] || [] : [];
  const holder = form.querySelector(".buttons");
  holder.replaceChildren(
    ...actions.map((action) => {
      const button = document.createElement("button");
      button.name = "action";
      button.value = action;
      button.textContent = LABELS[action] || action;
      return button;
    }),
  );
}

async function work(form, action) {
  const note = form.elements.namedItem("note");
  const message = form.querySelector(".msg");
  message.classList.remove("failed");
  if (!note.value.trim()) {
    message.textContent = "Write a note first: what was done, or why.";
    message.classList.add("failed");
    return;
  }
  const buttons = form.querySelectorAll("button");
  buttons.forEach((b) => { b.disabled = true; });
  message.textContent = "saving…";
  try {
    const flag = encodeURIComponent(form.dataset.flag);
    const response = await fetch(`/v1/friction/${flag}/${action}`, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", Accept: "application/json" },
      body: JSON.stringify({ note: note.value.trim() }),
    });
    const body = await response.json().catch(() => ({}));
    if (!response.ok) {
      message.textContent = response.status === 401
        ? "Your session ended: sign in again."
        : detailOf(body, response);
      message.classList.add("failed");
      return;
    }
    const row = form.closest("tr");
    row.dataset.status = body.status;
    const cell = row.querySelector('[data-field="status"]');
    const badge = document.createElement("span");
    badge.className = `status st-${body.status}`;
    badge.textContent = body.status;
    cell.replaceChildren(badge);
    row.querySelector('[data-field="changed_by"]').textContent = body.status_changed_by || "";
    note.value = "";
    setButtons(form, body.status);
    message.textContent = `${body.status} by ${body.status_changed_by}`;
  } catch (error) {
    message.textContent = `not saved: ${error}`;
    message.classList.add("failed");
  } finally {
    buttons.forEach((b) => { b.disabled = false; });
  }
}

document.addEventListener("submit", (event) => {
  const form = event.target;
  if (!(form instanceof HTMLFormElement) || !form.classList.contains("work")) return;
  event.preventDefault();
  const action = event.submitter ? event.submitter.value : "";
  if (action) work(form, action);
});
