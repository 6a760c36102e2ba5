// The SDK playground: plays an app against the real SDK API with the project's public key.
// Text is set with textContent only: nothing from a response is parsed as HTML.
(() => {
  const root = document.getElementById("playground");
  if (!root) return;
  const key = root.dataset.publicKey;
  const $ = (id) => document.getElementById(id);
  const defaults = {
    title: "Help us improve",
    message: "Would you answer a few questions about your experience?",
    start_label: "Start",
    dismiss_label: "Not now",
  };
  let invite = null;

  const user = () => $("pg-reference").value.trim();
  const status = (text) => { $("pg-status").textContent = text; };

  async function call(method, path, body) {
    // Marked as the playground's: not the app's first call (the dashboard keeps showing the
    // SDK's setup until the app calls).
    const headers = { Authorization: "Bearer " + key, "X-UserJourneys-Playground": "1" };
    if (body) headers["Content-Type"] = "application/json";
    const response = await fetch(path, { method, headers, body: body ? JSON.stringify(body) : undefined });
    const text = await response.text();
    $("pg-response").textContent = method + " " + path + "\n→ " + response.status + "\n" + text;
    let json = {};
    try { json = text ? JSON.parse(text) : {}; } catch (_) { json = {}; }
    return { status: response.status, json };
  }

  // An answer other than `ok` (the status that call succeeds with) is said as the API's own
  // message, as an app would have to handle it; nothing on the card changes.
  function failed(answer, ok) {
    if (answer.status === ok) return false;
    const error = answer.json.error || {};
    status("The SDK API answered " + answer.status + (error.message ? ": " + error.message : "."));
    return true;
  }

  function showCard(pending) {
    invite = pending;
    const card = $("pg-card");
    if (!pending) { card.hidden = true; return; }
    const copy = pending.prompt || {};
    const pick = (field) => copy[field] || defaults[field];
    $("pg-title").textContent = pick("title");
    $("pg-message").textContent = pick("message");
    $("pg-accept").textContent = pick("start_label");
    $("pg-dismiss").textContent = pick("dismiss_label");
    card.hidden = false;
  }

  function showLinks(links) {
    const list = $("pg-link-list");
    list.replaceChildren();
    (links || []).forEach((link) => {
      const item = document.createElement("li");
      const button = document.createElement("button");
      button.type = "button";
      button.className = "secondary pg-open-link";
      button.textContent = (link.prompt && (link.prompt.start_label || link.prompt.title)) || "Take part";
      button.addEventListener("click", () => open(link.url));
      item.append(button, " ", link.url);
      list.append(item);
    });
    $("pg-links").hidden = !(links && links.length);
  }

  function showLaunch(answer) {
    const launch = $("pg-launch");
    if (answer.url) {
      $("pg-launch-url").href = answer.url;
      $("pg-launch-note").textContent = answer.outcome === "webview"
        ? "(the signed link the app opens in a webview, valid 15 minutes)"
        : "(the study's link, which the app opens in the browser)";
      launch.hidden = false;
      status("Outcome: " + answer.outcome + ". Follow the link to reach the interview.");
    } else {
      launch.hidden = true;
      status("Outcome: " + answer.outcome + (answer.reason ? " (" + answer.reason + ")" : ""));
    }
  }

  async function open(url) {
    const { json } = await call("POST", "/sdk/v1/links/resolve", { url, reference_id: user(), metadata: { source: "playground" } });
    showLaunch(json);
  }

  $("pg-config-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    $("pg-launch").hidden = true;
    const answer = await call("GET", "/sdk/v1/config?reference_id=" + encodeURIComponent(user()));
    // A refusal is said with its message, and nothing of the previous user's stays shown.
    if (failed(answer, 200)) { showCard(null); showLinks([]); return; }
    const { json } = answer;
    const triggers = $("pg-triggers");
    triggers.replaceChildren(...(json.triggers || []).map((t) => {
      const option = document.createElement("option");
      option.value = t.event_name;
      return option;
    }));
    showCard(json.pending_invite);
    showLinks(json.direct_links);
    status(json.pending_invite ? "This user has a pending invite: the app shows the card." : "No invite for this user now.");
  });

  // Another user: the card and links shown were the previous user's.
  $("pg-reference").addEventListener("input", () => {
    showCard(null);
    showLinks([]);
    $("pg-launch").hidden = true;
  });

  $("pg-event-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    $("pg-launch").hidden = true;
    const answer = await call("POST", "/sdk/v1/events", { event_name: $("pg-event-name").value.trim(), reference_id: user(), metadata: { source: "playground" } });
    if (failed(answer, 200)) return;
    const { json } = answer;
    showCard(json.pending_invite);
    showLinks(json.direct_links);
    status("Outcome: " + json.outcome + (json.reason ? " (" + json.reason + ")" : ""));
  });

  $("pg-accept").addEventListener("click", async () => {
    if (!invite) return;
    const answer = await call("POST", "/sdk/v1/invites/" + encodeURIComponent(invite.code) + "/accept", { reference_id: user(), supports_webview: true });
    if (failed(answer, 200)) return;
    showCard(null);
    showLaunch(answer.json);
  });

  $("pg-dismiss").addEventListener("click", async () => {
    if (!invite) return;
    // With the user, as docs/sdk.md tells apps: the server checks the invite is theirs.
    const answer = await call("POST", "/sdk/v1/invites/" + encodeURIComponent(invite.code) + "/dismiss", { reference_id: user() });
    if (failed(answer, 204)) return;
    showCard(null);
    status("Dismissed: this rule waits for its cooldown before inviting this user again.");
  });
})();
