/* The /moderate page: keyboard navigation, decisions, history, actions on authors, and polling
 * (new held comments in the Held view; the tabs' counts in every view).
 *
 * Server data only ever reaches the page through textContent and attribute setters (never
 * innerHTML). New cards are clones of the <template> the server rendered, filled slot by slot;
 * the marks in a comment's text come from the server too (`content_parts`).
 */
(function () {
  "use strict";

  const main = document.getElementById("queue");
  if (!main) return;

  const list = document.getElementById("cards");
  const empty = document.getElementById("empty");
  const countNode = document.getElementById("queue-count");
  const reportedNode = document.getElementById("reported-count");
  const offline = document.getElementById("offline");
  const toastNode = document.getElementById("toast");
  const help = document.getElementById("help");
  const authorDialog = document.getElementById("author-dialog");
  const template = document.getElementById("card-template");
  const csrfToken = document.querySelector('meta[name="csrf-token"]').content;

  const SVG = "http://www.w3.org/2000/svg";
  const HISTORY = ["approved", "held", "rejected"];
  const view = main.dataset.view || "held";
  const overturn = main.dataset.overturn === "true";
  const pageSize = Number(main.dataset.pageSize) || 50;
  const pollMs = Math.max(0.2, Number(main.dataset.pollSeconds) || 5) * 1000;
  const title = document.title;

  const DECIDED = {
    held: { approve: "Approved.", reject: "Rejected." },
    reported: { approve: "Kept published; its reports are settled.", reject: "Rejected." },
    approved: { reject: "Rejected; its site is told." },
  }[view] || { approve: "Approved.", reject: "Rejected." };

  let tail = main.dataset.tail || "";
  let focused = null;
  let count = Number(countNode.textContent) || 0;
  let reported = Number(reportedNode.textContent) || 0;
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

  function plural(n, noun) {
    return `${n} ${noun}${n === 1 ? "" : "s"}`;
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

  function setReported(value) {
    reported = Math.max(0, value);
    reportedNode.textContent = String(reported);
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

  // A card leaves the page because it was decided: the view's count goes down with it.
  function decidedCard(card) {
    removeCard(card);
    if (view === "held") setCount(count - 1);
    else if (view === "reported") setReported(reported - 1);
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

  function post(url, body) {
    return request(url, {
      method: "POST",
      headers: { "Content-Type": "application/json", "X-CSRFToken": csrfToken },
      body: JSON.stringify(body),
    });
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

  function decision(card, action) {
    const body = { action, note: card.querySelector(".note").value.trim() };
    if (overturn) body.overturn = true;
    const label = card.querySelector(".reject-as");
    if (action === "reject" && label && label.value) body.label = label.value;
    return body;
  }

  async function decide(card, action) {
    // A view without the button (the Approved view has no approve) ignores its key too.
    if (!card || !card.querySelector(`button[data-action="${action}"]`)) return;
    if (card.classList.contains("is-busy")) return;
    setBusy(card, true);
    let response;
    try {
      response = await post(card.dataset.decideUrl, decision(card, action));
    } catch (error) {
      setBusy(card, false);
      toast("Network problem: the decision was not saved. Try again.", "error");
      return;
    }
    if (response.ok) {
      toast(DECIDED[action], action);
      decidedCard(card);
    } else if (response.status === 409) {
      toast("Already decided by someone else.", "warn");
      decidedCard(card);
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

  // --- the author's standing and counts, on every card of theirs ---------------------------------

  function setStanding(card, standing) {
    const badge = card.querySelector('[data-slot="standing"]');
    badge.textContent = standing ? standing.label : "";
    badge.title = standing ? standing.title : "";
    badge.dataset.standing = standing ? standing.standing : "";
    badge.hidden = !standing;
    card.dataset.standing = standing ? standing.standing : "";
  }

  function setHistory(card, history) {
    for (const status of HISTORY) {
      const tally = card.querySelector(`[data-slot="${status}"]`);
      tally.textContent = String(history[status]);
      tally.parentElement.classList.toggle("some", history[status] > 0);
    }
    card.dataset.authorHeld = String(history.held);
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

  // A piece of the comment; what drove the decision is marked (as text, always).
  function contentPart(part) {
    if (!part.kind) return document.createTextNode(part.text);
    const mark = el("mark", part.class, part.text);
    mark.title = part.title;
    return mark;
  }

  function pill(status) {
    return el("span", `pill status-${status}`, status);
  }

  function glance(item) {
    const line = el("li", "glance");
    const when = el("time", "glance-when", item.when);
    when.setAttribute("datetime", item.submitted_at);
    line.append(pill(item.status), el("span", "glance-text", item.excerpt), when);
    return line;
  }

  function fillParent(card, parent) {
    const box = card.querySelector('[data-slot="parent"]');
    box.hidden = !parent;
    if (!parent) return;
    slot(card, "parent-author", parent.author);
    slot(card, "parent-status", parent.status).className = `pill status-${parent.status}`;
    slot(card, "parent-time", parent.when).setAttribute("datetime", parent.submitted_at);
    slot(card, "parent-text", parent.excerpt);
  }

  function fillReports(card, reports) {
    const box = card.querySelector('[data-slot="reports"]');
    box.hidden = !reports;
    if (!reports) return;
    slot(card, "reports-title", reports.title);
    slot(card, "report-reasons").append(
      ...reports.reasons.map((reason) => {
        const line = el("li");
        line.append(el("b", "", String(reason.count)), ` ${reason.name}`);
        return line;
      }),
    );
    slot(card, "report-notes").append(
      ...reports.notes.map((note) => {
        const line = el("li");
        line.append(el("q", "", note.note), " ", el("span", "muted", `${note.reporter} · ${note.reason}`));
        return line;
      }),
    );
  }

  function fillRecent(card, recent, open) {
    const box = card.querySelector('[data-slot="recent-box"]');
    box.hidden = recent.length === 0;
    box.open = open;
    slot(card, "recent-count", String(recent.length));
    slot(card, "recent").append(...recent.map(glance));
  }

  function buildCard(item) {
    const card = template.content.firstElementChild.cloneNode(true);
    card.dataset.key = item.key;
    card.dataset.decideUrl = item.urls.decide;
    card.dataset.auditUrl = item.urls.audit;
    card.dataset.authorUrl = item.urls.author;
    card.dataset.authorKey = item.author.key;
    card.dataset.authorName = item.author.name;
    slot(card, "author", item.author.name);
    setStanding(card, item.author.standing);
    slot(card, "author-meta", item.author.meta);
    link(card, "author-url", item.author.url, "website");
    slot(card, "site", item.site);
    slot(card, "time", item.submitted_label).setAttribute("datetime", item.submitted_at);
    fillParent(card, item.parent);
    slot(card, "content").append(...item.content_parts.map(contentPart));
    const legend = slot(card, "legend");
    legend.append(...item.marks.map((mark) => el("span", `legend-key legend-${mark.kind}`, mark.name)));
    legend.hidden = item.marks.length === 0;
    fillReports(card, item.reports);
    link(card, "post-link", item.post.permalink, item.post.label || "permalink");
    slot(card, "post-label", item.post.label).hidden = Boolean(item.post.permalink) || !item.post.label;
    slot(card, "reply", item.post.reply_label).hidden = !item.post.reply_label;
    slot(card, "id", item.id);
    if (card.querySelector('[data-slot="decided"]')) slot(card, "decided", item.decided);
    slot(card, "reasons").append(...item.reasons.map((reason) => el("li", "", reason)));
    setHistory(card, item.history);
    fillRecent(card, item.recent, item.recent_open);
    slot(card, "scores").append(...item.scores.map(scoreBar));
    card.querySelector(".author-open").hidden = !item.urls.author;
    return card;
  }

  // --- acting on a card's author -----------------------------------------------------------------

  const authorName = document.getElementById("author-name");
  const authorNow = document.getElementById("author-now");
  const authorNote = document.getElementById("author-note");
  const confirmBox = document.getElementById("author-confirm");
  const confirmText = document.getElementById("author-confirm-text");
  const confirmYes = document.getElementById("author-confirm-yes");
  const choices = document.getElementById("author-choices");

  let authorCard = null; // the card whose author the dialog acts on
  let pending = null; // a ban waiting for its confirmation: { action, rejectHeld, button }
  let beforeAuthor = null;

  const AUTHOR_DONE = {
    ban: (name) => `${name} is banned.`,
    premoderate: (name) => `${name} is premoderated: their next comments are held.`,
    trust: (name) => `${name} is trusted: their next comments skip the spam checks.`,
    clear: (name) => `${name}'s standing is cleared: the site's policy decides again.`,
  };

  // Only the choices that change something: no second ban, no clearing nothing.
  function offerChoices(standing, held) {
    const offered = {
      ban: standing !== "banned",
      "ban-reject": held > 0,
      premoderate: standing !== "premoderated",
      trust: standing !== "trusted",
      clear: Boolean(standing),
    };
    for (const item of choices.children) item.hidden = !offered[item.dataset.choice];
  }

  function setDialogBusy(busy) {
    for (const button of authorDialog.querySelectorAll("button")) button.disabled = busy;
    authorDialog.classList.toggle("is-busy", busy);
  }

  function openAuthor(card) {
    if (!card) return;
    if (!card.dataset.authorUrl) {
      toast("This comment has no author id: there is no author to act on.", "warn");
      return;
    }
    authorCard = card;
    pending = null;
    beforeAuthor = document.activeElement;
    const standing = card.dataset.standing;
    const badge = card.querySelector('[data-slot="standing"]');
    authorName.textContent = card.dataset.authorName;
    authorNow.textContent = standing ? `${badge.title}.` : "No standing: the site's policy decides.";
    offerChoices(standing, Number(card.dataset.authorHeld) || 0);
    authorNote.value = "";
    confirmBox.hidden = true;
    setDialogBusy(false);
    authorDialog.hidden = false;
    const first = choices.querySelector("li:not([hidden]) button");
    (first || document.getElementById("author-close")).focus();
  }

  function closeAuthor() {
    authorDialog.hidden = true;
    authorCard = null;
    pending = null;
    const target = beforeAuthor;
    beforeAuthor = null;
    if (!target || !target.isConnected || target === document.body) return;
    restoringFocus = true; // giving focus back must not move the highlight
    target.focus();
    restoringFocus = false;
  }

  function askToConfirm(button, rejectHeld) {
    const name = authorCard.dataset.authorName;
    const held = Number(authorCard.dataset.authorHeld) || 0;
    let text = `Ban ${name}? Their later comments will be rejected.`;
    if (rejectHeld) text += ` Their ${plural(held, "held comment")} will be rejected now.`;
    confirmText.textContent = text;
    confirmYes.textContent = rejectHeld ? "Yes, ban and reject" : "Yes, ban";
    pending = { action: "ban", rejectHeld, button };
    confirmBox.hidden = false;
    confirmYes.focus();
  }

  function cancelConfirm() {
    confirmBox.hidden = true;
    const back = pending && pending.button;
    pending = null;
    if (back) back.focus();
  }

  function applyAuthor(author) {
    for (const card of cards()) {
      if (card.dataset.authorKey !== author.key) continue;
      setStanding(card, author.standing);
      setHistory(card, author.history);
    }
  }

  function removeRejected(keys) {
    let removed = 0;
    for (const key of keys) {
      const card = findCard(key);
      gone.add(key);
      if (!card) continue;
      removeCard(card);
      removed += 1;
    }
    if (view === "held") setCount(count - removed);
    return removed;
  }

  async function actOnAuthor(action, rejectHeld) {
    const card = authorCard;
    if (!card) return;
    const name = card.dataset.authorName;
    setDialogBusy(true);
    let response;
    try {
      response = await post(card.dataset.authorUrl, {
        action,
        note: authorNote.value.trim(),
        reject_held: rejectHeld,
      });
    } catch (error) {
      setDialogBusy(false);
      toast("Network problem: nothing was changed. Try again.", "error");
      return;
    }
    if (!response.ok) {
      setDialogBusy(false);
      toast(await errorMessage(response), "error");
      return;
    }
    const body = await response.json();
    closeAuthor();
    applyAuthor(body.author);
    removeRejected(body.rejected);
    let message = AUTHOR_DONE[action](name);
    if (rejectHeld) message += ` ${plural(body.rejected.length, "held comment")} rejected.`;
    toast(message, action === "ban" ? "reject" : "info");
  }

  choices.addEventListener("click", (event) => {
    const button = event.target.closest("button[data-author-action]");
    if (!button || !authorCard) return;
    const rejectHeld = button.dataset.rejectHeld === "true";
    if (button.dataset.authorAction === "ban") askToConfirm(button, rejectHeld);
    else actOnAuthor(button.dataset.authorAction, false);
  });
  confirmYes.addEventListener("click", () => {
    if (pending) actOnAuthor(pending.action, pending.rejectHeld);
  });
  document.getElementById("author-confirm-no").addEventListener("click", cancelConfirm);
  document.getElementById("author-close").addEventListener("click", closeAuthor);
  authorDialog.addEventListener("click", (event) => {
    if (event.target === authorDialog) closeAuthor();
  });

  // --- polling ----------------------------------------------------------------------------------

  let polling = false;

  // The Held view takes new held comments; every view keeps the tabs' counts fresh.
  async function poll() {
    if (polling) return;
    polling = true;
    try {
      const params = new URLSearchParams();
      if (main.dataset.site) params.set("site", main.dataset.site);
      if (main.dataset.label) params.set("label", main.dataset.label);
      if (tail) params.set("after", tail);
      const room = view === "held" ? Math.max(0, pageSize - list.children.length) : 0;
      params.set("limit", String(room));
      const response = await request(`${main.dataset.queueUrl}?${params}`);
      if (!response.ok) throw new Error(String(response.status));
      const body = await response.json();
      for (const item of body.items) {
        if (!gone.has(item.key) && !findCard(item.key)) list.append(buildCard(item));
      }
      if (body.tail) tail = body.tail;
      setCount(body.count);
      setReported(body.reported);
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
    b: () => openAuthor(focused),
    "?": openHelp,
  };

  // Tab stays in the author menu while it is open (it is modal).
  function keepTabInside(event) {
    const stops = Array.from(authorDialog.querySelectorAll("button, input")).filter(
      (node) => !node.disabled && node.offsetParent !== null,
    );
    if (!stops.length) return;
    const first = stops[0];
    const last = stops[stops.length - 1];
    if (event.shiftKey && document.activeElement === first) {
      event.preventDefault();
      last.focus();
    } else if (!event.shiftKey && document.activeElement === last) {
      event.preventDefault();
      first.focus();
    }
  }

  // While the author menu is open, keys are its own: Escape steps back (confirmation, menu).
  function authorKey(event) {
    if (event.key === "Tab") keepTabInside(event);
    if (event.key !== "Escape") return;
    event.preventDefault();
    if (!confirmBox.hidden) cancelConfirm();
    else closeAuthor();
  }

  document.addEventListener("keydown", (event) => {
    if (event.ctrlKey || event.metaKey || event.altKey || event.isComposing) return;
    if (!authorDialog.hidden) {
      authorKey(event);
      return;
    }
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
    else if (button.classList.contains("author-open")) openAuthor(card);
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
  const search = document.getElementById("search");
  if (search) {
    const automatic = search.querySelector('input[name="automatic"]');
    automatic.addEventListener("change", () => search.submit());
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
