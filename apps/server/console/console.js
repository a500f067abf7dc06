// The dev console: each button calls this server as a frontend would, and the result
// lands in #status (data-outcome is ok or error, data-code the server's error code)
// and #output (the answer's JSON). body[data-done] counts the finished actions.
"use strict";

const $ = (id) => document.getElementById(id);

/// How long the console waits for the revocation webhook to end the session.
const REVOKE_WAIT_MS = 15000;
const REVOKE_POLL_MS = 200;

/// The error code and message of an answer, whatever its exact shape.
function problemOf(body, status) {
  const error = body && typeof body === "object" ? body.error || body : {};
  return {
    code: error.code || `http-${status}`,
    message: error.message || error.detail || `HTTP ${status}`,
  };
}

/// Calls this server; resolves to { ok, status, body } (never throws for HTTP errors).
async function call(method, path, { token, body } = {}) {
  const headers = {};
  if (token) headers.authorization = `Bearer ${token}`;
  if (body !== undefined) headers["content-type"] = "application/json";
  let response;
  try {
    response = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: "same-origin",
    });
  } catch (error) {
    return { ok: false, status: 0, body: { error: { code: "network-error", message: String(error) } } };
  }
  const text = await response.text();
  let parsed = null;
  try {
    parsed = text ? JSON.parse(text) : null;
  } catch {
    parsed = { text };
  }
  return { ok: response.ok, status: response.status, body: parsed };
}

function show(id, value) {
  $(id).textContent = typeof value === "string" ? value : JSON.stringify(value, null, 2);
}

/// Records the outcome of one action.
function report(step, outcome, code, message, body) {
  const status = $("status");
  status.dataset.step = step;
  status.dataset.outcome = outcome;
  status.dataset.code = code || "";
  status.textContent = outcome === "ok" ? `${step}: ${message}` : `${step} failed: ${code}: ${message}`;
  show("output", body === undefined ? "" : body);
}

/// Reports an answer: ok with `message`, or its error code and message.
function reportAnswer(step, answer, message) {
  if (answer.ok) {
    report(step, "ok", "", message, answer.body);
  } else {
    const problem = problemOf(answer.body, answer.status);
    report(step, "error", problem.code, problem.message, answer.body);
  }
  return answer.ok;
}

/// The claims of a JWT, or null when it is not one (no verification: display only).
function claimsOf(token) {
  const part = token.split(".")[1];
  if (!part) return null;
  try {
    const json = atob(part.replace(/-/g, "+").replace(/_/g, "/").padEnd(Math.ceil(part.length / 4) * 4, "="));
    return JSON.parse(json);
  } catch {
    return null;
  }
}

function token() {
  return $("token").value.trim();
}

function describeToken() {
  const claims = claimsOf(token());
  $("session-id").textContent = (claims && claims.sid) || "none";
  $("token-expiry").textContent =
    claims && claims.exp ? new Date(claims.exp * 1000).toISOString() : "unknown";
}

function signedOutPanes(why) {
  show("clerk", why);
  show("instant", why);
}

const actions = {
  async mint() {
    const answer = await call("POST", "/dev/token", { body: { email: $("email").value.trim() } });
    if (answer.ok && answer.body && answer.body.token) {
      $("token").value = answer.body.token;
      describeToken();
    }
    reportAnswer("mint", answer, "a token for " + $("email").value.trim());
  },

  async "sign-in"() {
    const answer = await call("POST", "/v1/session", { token: token() });
    if (answer.ok) {
      show("clerk", answer.body.clerk);
      show("instant", answer.body.user);
      // A frontend hands refresh_token to InstantDB's SDK (db.auth.signInWithToken);
      // the console keeps it out of sight.
      answer.body = { ...answer.body, refresh_token: "(received; hidden)" };
    }
    reportAnswer("sign-in", answer, answer.ok ? "signed in to InstantDB" : "");
  },

  async me() {
    const answer = await call("GET", "/v1/me", { token: token() });
    if (answer.ok) {
      show("clerk", answer.body.clerk);
      show("instant", answer.body.instant ? answer.body.instant.user : "no InstantDB session yet: sign in");
    }
    reportAnswer("me", answer, answer.ok && answer.body.instant ? "signed in" : "no InstantDB session");
  },

  async "run-query"() {
    let query;
    try {
      query = JSON.parse($("query").value);
    } catch (error) {
      report("query", "error", "console-invalid-json", "the query is not JSON: " + error.message);
      return;
    }
    const answer = await call("POST", "/v1/query", { token: token(), body: { query } });
    reportAnswer("query", answer, "the query answered");
  },

  async transact() {
    let steps;
    try {
      steps = JSON.parse($("steps").value);
    } catch (error) {
      report("transact", "error", "console-invalid-json", "the steps are not JSON: " + error.message);
      return;
    }
    const answer = await call("POST", "/v1/transact", { token: token(), body: { steps } });
    reportAnswer("transact", answer, "the transaction was applied");
    newSteps();
  },

  async "sign-out"() {
    const answer = await call("DELETE", "/v1/session", { token: token() });
    if (answer.ok) signedOutPanes("signed out");
    reportAnswer("sign-out", answer, "signed out of InstantDB (and of the Clerk session)");
  },

  async revoke() {
    const claims = claimsOf(token());
    if (!claims || !claims.sid) {
      report("revoke", "error", "console-no-session", "mint or paste a token first: its sid names the session");
      return;
    }
    const answer = await call("POST", "/dev/session/revoke", { body: { session_id: claims.sid } });
    if (!reportAnswer("revoke", answer, "revoked; waiting for the webhook")) return;
    // The local Clerk delivers session.revoked to this server; until then the session
    // is still live here. Ask until the server refuses the token.
    const deadline = Date.now() + REVOKE_WAIT_MS;
    while (Date.now() < deadline) {
      const me = await call("GET", "/v1/me", { token: token() });
      if (!me.ok) {
        const problem = problemOf(me.body, me.status);
        signedOutPanes("session ended: " + problem.code);
        report("revoke", "ok", problem.code, `the InstantDB session ended: /v1/me now answers ${problem.code}`, me.body);
        return;
      }
      await new Promise((resolve) => setTimeout(resolve, REVOKE_POLL_MS));
    }
    report("revoke", "error", "console-still-signed-in", `the session was revoked in the local Clerk but this server still accepts it after ${REVOKE_WAIT_MS / 1000} s (is the webhook endpoint reachable?)`);
  },
};

/// A fresh transaction: one goal with a new id.
function newSteps() {
  $("steps").value = JSON.stringify([["update", "goals", crypto.randomUUID(), { title: "Get fit" }]]);
}

document.addEventListener("DOMContentLoaded", () => {
  newSteps();
  $("token").addEventListener("input", describeToken);
  for (const [id, action] of Object.entries(actions)) {
    $(id).addEventListener("click", async () => {
      const buttons = document.querySelectorAll("button");
      buttons.forEach((b) => (b.disabled = true));
      try {
        await action();
      } catch (error) {
        report(id, "error", "console-failed", String(error));
      } finally {
        buttons.forEach((b) => (b.disabled = false));
        document.body.dataset.done = String(Number(document.body.dataset.done || 0) + 1);
      }
    });
  }
  document.body.dataset.ready = "true";
});
