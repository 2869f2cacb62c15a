// Keeps the comment thread current: a moderator's decision shows up without a reload.
"use strict";

const POLL_MILLISECONDS = 2000;

async function refreshThread(container) {
  try {
    const response = await fetch(container.dataset.poll, { headers: { Accept: "text/html" } });
    if (!response.ok) return;
    const html = (await response.text()).trim();
    if (html !== container.dataset.shown) {
      container.innerHTML = html; // rendered by the site's own template: escaped there
      container.dataset.shown = html;
    }
  } catch (error) {
    // offline for a moment: try again at the next tick
  }
}

document.addEventListener("DOMContentLoaded", () => {
  const container = document.getElementById("thread");
  if (!container) return;
  container.dataset.shown = container.innerHTML.trim();
  setInterval(() => refreshThread(container), POLL_MILLISECONDS);
});
