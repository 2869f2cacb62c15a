/* The /moderate queue: keyboard navigation, decisions, history, and polling for new comments.
 *
 * Server data only ever reaches the page through textContent and attribute setters (never
 * innerHTML). New cards are clones of the <template> the server rendered, filled slot by slot.
 */
(function () {
  "use strict";

  const main = document.getElementById("queue");
  if (!main) return;

  const list = document.getElementById("cards");
  const empty = document.getElementById("empty");
  const countNode = document.getElementById("queue-count");
  const offline = document.getElementById("offline");
  const toastNode = document.getElementById("toast");
  const help = document.getElementById("help");
  const template = document.getElementById("card-template");
  const csrfToken = document.querySelector('meta[name="csrf-token"]').content;

  const SVG = "http://www.w3.org/2000/svg";
  const HISTORY = ["approved", "held", "rejected"];
  const pageSize = Number(main.dataset.pageSize) || 50;
  const pollMs = Math.max(0.2, Number(main.dataset.pollSeconds) || 5) * 1000;
  const title = document.title;

  let tail = main.dataset.tail || "";
  let focused = null;
  let count = Number(countNode.textContent) || 0;
  const gone = new Set(); // cards decided here: never shown again, even if a poll races us

  // --- small helpers ---------------------------------------------------------------------------

  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function svg(tag, attributes) {
    const node = document.createElementNS(SVG, tag);
    for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, String(value));
    return node;
  }

  function cards() {
    return Array.from(list.children);
  }

  function findCard(key) {
    return cards().find((card) => card.dataset.key === key) || null;
  }

  function safeHref(url) {
    return typeof url === "string" && /^https?:\/\//i.test(url) ? url : "";
  }

  let toastTimer = 0;
  function toast(message, kind) {
    toastNode.textContent = message;
    toastNode.dataset.kind = kind || "info";
    toastNode.hidden = false;
    clearTimeout(toastTimer);
    toastTimer = setTimeout(() => {
      toastNode.hidden = true;
    }, 4000);
  }

  function setCount(value) {
    count = Math.max(0, value);
    countNode.textContent = String(count);
    document.title = count ? `(${count}) ${title}` : title;
  }

  function refreshEmpty() {
    empty.hidden = list.children.length > 0;
  }

  // --- focus -----------------------------------------------------------------------------------

  function setFocus(card, scroll) {
    if (focused) {
      focused.classList.remove("is-focused");
      focused.removeAttribute("aria-current");
    }
    focused = card || null;
    if (!focused) return;
    focused.classList.add("is-focused");
    focused.setAttribute("aria-current", "true");
    if (scroll !== false) focused.scrollIntoView({ block: "nearest" });
  }

  function move(step) {
    const all = cards();
    if (!all.length) return;
    // A button left focused in another card would compete with the highlight: let it go.
    if (list.contains(document.activeElement)) document.activeElement.blur();
    const index = all.indexOf(focused);
    const next = index < 0 ? 0 : Math.min(Math.max(index + step, 0), all.length - 1);
    setFocus(all[next]);
  }

  function removeCard(card) {
    gone.add(card.dataset.key);
    const next = card.nextElementSibling || card.previousElementSibling;
    const wasFocused = card === focused;
    card.remove();
    if (wasFocused) {
      focused = null;
      setFocus(next);
    }
    refreshEmpty();
  }

  // --- talking to the server ---------------------------------------------------------------------

  async function request(url, options) {
    const headers = Object.assign({ Accept: "application/json" }, (options || {}).headers);
    const response = await fetch(url, Object.assign({ credentials: "same-origin" }, options, { headers }));
    if (response.status === 401) {
      window.location.assign(main.dataset.loginUrl);
      throw new Error("logged out");
    }
    return response;
  }

  async function errorMessage(response) {
    try {
      const body = await response.json();
      return body.error.message;
    } catch (error) {
      return `The server answered ${response.status}.`;
    }
  }

  function setBusy(card, busy) {
    card.classList.toggle("is-busy", busy);
    for (const button of card.querySelectorAll("button[data-action]")) button.disabled = busy;
  }

  async function decide(card, action) {
    if (!card || card.classList.contains("is-busy")) return;
    setBusy(card, true);
    let response;
    try {
      response = await request(card.dataset.decideUrl, {
        method: "POST",
        headers: { "Content-Type": "application/json", "X-CSRFToken": csrfToken },
        body: JSON.stringify({ action, note: card.querySelector(".note").value.trim() }),
      });
    } catch (error) {
      setBusy(card, false);
      toast("Network problem: the decision was not saved. Try again.", "error");
      return;
    }
    if (response.ok) {
      toast(action === "approve" ? "Approved." : "Rejected.", action);
      removeCard(card);
      setCount(count - 1);
    } else if (response.status === 409) {
      toast("Already decided by someone else.", "warn");
      removeCard(card);
      setCount(count - 1);
    } else if (response.status === 404) {
      toast("This comment no longer exists.", "warn");
      removeCard(card);
    } else {
      setBusy(card, false);
      toast(await errorMessage(response), "error");
    }
  }

  function auditLine(event) {
    const item = el("li");
    const when = el("time", "audit-when", new Date(event.at).toLocaleString());
    when.setAttribute("datetime", event.at);
    item.append(when, el("span", "audit-actor", event.actor), el("span", "audit-action", event.action));
    item.append(el("span", "audit-transition", `${event.from || "new"} → ${event.to}`));
    if (event.note) item.append(el("q", "audit-note", event.note));
    return item;
  }

  async function toggleHistory(card) {
    const panel = card.querySelector(".audit");
    const button = card.querySelector(".history-toggle");
    const open = panel.hidden;
    panel.hidden = !open;
    button.setAttribute("aria-expanded", String(open));
    if (!open) return;
    panel.replaceChildren(el("li", "muted", "Loading…"));
    try {
      const response = await request(card.dataset.auditUrl);
      if (!response.ok) throw new Error(await errorMessage(response));
      const body = await response.json();
      panel.replaceChildren(...body.events.map(auditLine));
    } catch (error) {
      panel.replaceChildren(el("li", "muted", `History unavailable: ${error.message}`));
    }
  }

  // --- cards for comments that arrive while the page is open -------------------------------------

  function slot(card, name, text) {
    const node = card.querySelector(`[data-slot="${name}"]`);
    node.textContent = text || "";
    return node;
  }

  function link(card, name, href, text) {
    const node = slot(card, name, text);
    const url = safeHref(href);
    node.hidden = !url;
    if (url) node.setAttribute("href", url);
    else node.removeAttribute("href");
  }

  function scoreBar(bar) {
    const item = el("li", bar.over ? "score over" : "score");
    let hint = `${bar.name} ${bar.display}`;
    if (bar.threshold !== null) hint += ` (holds at ${bar.threshold_display})`;
    item.title = hint;
    const graphic = svg("svg", {
      class: "bar",
      viewBox: "0 0 100 10",
      preserveAspectRatio: "none",
      "aria-hidden": "true",
      focusable: "false",
    });
    graphic.append(svg("rect", { class: "track", width: 100, height: 10 }));
    graphic.append(svg("rect", { class: "fill", width: bar.percent, height: 10 }));
    if (bar.threshold_percent !== null) {
      const x = bar.threshold_percent;
      graphic.append(svg("line", { class: "mark", x1: x, x2: x, y1: 0, y2: 10 }));
    }
    item.append(el("span", "score-name", bar.name), graphic, el("span", "score-value", bar.display));
    if (bar.over) {
      item.append(el("span", "visually-hidden", `at or past the hold threshold ${bar.threshold_display}`));
    }
    return item;
  }

  // A piece of the comment; the words that drove a learned score are marked (as text, always).
  function contentPart(part) {
    if (!part.label) return document.createTextNode(part.text);
    const mark = el("mark", "driver", part.text);
    mark.title = `drove the ${part.label} score`;
    return mark;
  }

  function buildCard(item) {
    const card = template.content.firstElementChild.cloneNode(true);
    card.dataset.key = item.key;
    card.dataset.decideUrl = item.urls.decide;
    card.dataset.auditUrl = item.urls.audit;
    slot(card, "author", item.author.name);
    slot(card, "author-meta", item.author.meta);
    link(card, "author-url", item.author.url, "website");
    slot(card, "site", item.site);
    slot(card, "time", item.submitted_label).setAttribute("datetime", item.submitted_at);
    slot(card, "content").append(...item.content_parts.map(contentPart));
    link(card, "post-link", item.post.permalink, item.post.label || "permalink");
    slot(card, "post-label", item.post.label).hidden = Boolean(item.post.permalink) || !item.post.label;
    slot(card, "reply", item.post.reply_label).hidden = !item.post.reply_label;
    slot(card, "id", item.id);
    slot(card, "reasons").append(...item.reasons.map((reason) => el("li", "", reason)));
    for (const status of HISTORY) {
      const tally = slot(card, status, String(item.history[status]));
      tally.parentElement.classList.toggle("some", item.history[status] > 0);
    }
    slot(card, "scores").append(...item.scores.map(scoreBar));
    return card;
  }

  // --- polling ----------------------------------------------------------------------------------

  let polling = false;

  async function poll() {
    if (polling) return;
    polling = true;
    try {
      const params = new URLSearchParams();
      if (main.dataset.site) params.set("site", main.dataset.site);
      if (main.dataset.label) params.set("label", main.dataset.label);
      if (tail) params.set("after", tail);
      params.set("limit", String(Math.max(0, pageSize - list.children.length)));
      const response = await request(`${main.dataset.queueUrl}?${params}`);
      if (!response.ok) throw new Error(String(response.status));
      const body = await response.json();
      for (const item of body.items) {
        if (!gone.has(item.key) && !findCard(item.key)) list.append(buildCard(item));
      }
      if (body.tail) tail = body.tail;
      setCount(body.count);
      if (!focused && list.firstElementChild) setFocus(list.firstElementChild, false);
      refreshEmpty();
      offline.hidden = true;
    } catch (error) {
      offline.hidden = false;
    } finally {
      polling = false;
    }
  }

  function schedule() {
    setTimeout(async () => {
      if (!document.hidden) await poll();
      schedule();
    }, pollMs);
  }

  // --- help overlay -----------------------------------------------------------------------------

  let beforeHelp = null;
  let restoringFocus = false;

  function openHelp() {
    beforeHelp = document.activeElement;
    help.hidden = false;
    document.getElementById("help-close").focus();
  }

  function closeHelp() {
    help.hidden = true;
    const target = beforeHelp;
    beforeHelp = null;
    if (!target || !target.isConnected || target === document.body) return;
    restoringFocus = true; // giving focus back must not move the highlight
    target.focus();
    restoringFocus = false;
  }

  // --- wiring -----------------------------------------------------------------------------------

  function typing(target) {
    return target instanceof Element && target.closest("input, textarea, select, [contenteditable]") !== null;
  }

  const KEYS = {
    j: () => move(1),
    k: () => move(-1),
    a: () => decide(focused, "approve"),
    r: () => decide(focused, "reject"),
    h: () => focused && toggleHistory(focused),
    n: () => focused && focused.querySelector(".note").focus(),
    "?": openHelp,
  };

  document.addEventListener("keydown", (event) => {
    if (event.ctrlKey || event.metaKey || event.altKey || event.isComposing) return;
    if (!help.hidden) {
      if (event.key === "Escape" || event.key === "?") {
        event.preventDefault();
        closeHelp();
      }
      return;
    }
    if (typing(event.target)) {
      if (event.key === "Escape") event.target.blur();
      return;
    }
    const action = KEYS[event.key];
    if (action) {
      event.preventDefault();
      action();
    }
  });

  list.addEventListener("click", (event) => {
    const card = event.target.closest(".card");
    if (!card) return;
    if (card !== focused) setFocus(card, false);
    const button = event.target.closest("button");
    if (!button) return;
    if (button.dataset.action) decide(card, button.dataset.action);
    else if (button.classList.contains("history-toggle")) toggleHistory(card);
  });

  list.addEventListener("focusin", (event) => {
    if (restoringFocus) return;
    const card = event.target.closest(".card");
    if (card && card !== focused) setFocus(card, false);
  });

  document.getElementById("help-open").addEventListener("click", openHelp);
  document.getElementById("help-close").addEventListener("click", closeHelp);
  help.addEventListener("click", (event) => {
    if (event.target === help) closeHelp();
  });

  const filters = document.getElementById("filters");
  for (const select of filters.querySelectorAll("select")) {
    select.addEventListener("change", () => filters.submit());
  }

  document.addEventListener("visibilitychange", () => {
    if (!document.hidden) poll();
  });

  setCount(count);
  setFocus(list.firstElementChild, false);
  refreshEmpty();
  schedule();
  document.documentElement.classList.add("js"); // wired: keys and buttons work from here on
})();
