// Drives the dev console (/dev/console) in headless Chromium through every step, and
// checks CORS from pages on other origins. Run by apps/server/tests/it/browser.rs with
// SERVER_URL (a dev-mode server), EXPIRED_TOKEN (a Clerk token that has expired), and
// APP_ORIGIN and OTHER_ORIGIN (a page each; the server allows the first only).
// Prints one JSON line: what each step showed.
import { chromium } from "playwright-core";

const server = process.env.SERVER_URL;
const expired = process.env.EXPIRED_TOKEN;
const appOrigin = process.env.APP_ORIGIN;
const otherOrigin = process.env.OTHER_ORIGIN;
const executablePath = process.env.CHROMIUM || "/usr/bin/chromium";
if (!server || !expired || !appOrigin || !otherOrigin) {
  throw new Error("SERVER_URL, EXPIRED_TOKEN, APP_ORIGIN and OTHER_ORIGIN must be set");
}

const browser = await chromium.launch({
  executablePath,
  headless: true,
  // As root (CI containers) Chromium's sandbox cannot start.
  args: ["--no-sandbox"],
});
const report = {};
try {
  const context = await browser.newContext();
  context.setDefaultTimeout(20000);
  const page = await context.newPage();
  const foreign = [];
  page.on("request", (request) => {
    if (!request.url().startsWith(server)) foreign.push(request.url());
  });
  const errors = [];
  page.on("pageerror", (error) => errors.push(String(error)));

  await page.goto(`${server}/dev/console`);
  await page.waitForSelector('body[data-ready="true"]');

  // Clicks a button and waits for its action to finish; returns what the page shows.
  async function act(id) {
    const done = Number(await page.getAttribute("body", "data-done"));
    await page.click(`#${id}`);
    await page.waitForSelector(`body[data-done="${done + 1}"]`);
    const status = page.locator("#status");
    return {
      outcome: await status.getAttribute("data-outcome"),
      code: await status.getAttribute("data-code"),
      text: await status.textContent(),
      output: await page.textContent("#output"),
      clerk: await page.textContent("#clerk"),
      instant: await page.textContent("#instant"),
    };
  }

  await page.fill("#email", "browser@example.com");
  report.mint = await act("mint");
  report.minted = (await page.inputValue("#token")).split(".").length === 3;
  report.session = await page.textContent("#session-id");
  report.signIn = await act("sign-in");
  report.me = await act("me");
  report.transact = await act("transact");
  report.query = await act("run-query");
  report.signOut = await act("sign-out");
  report.meAfterSignOut = await act("me");

  report.mintAgain = await act("mint");
  report.signInAgain = await act("sign-in");
  report.revoke = await act("revoke");
  report.queryAfterRevoke = await act("run-query");

  await page.fill("#token", expired);
  report.expired = await act("sign-in");
  report.foreign = [...foreign];
  report.pageErrors = errors;

  // CORS from a real browser: pages of an app on an allowed origin (APP_ORIGIN) and
  // on another (OTHER_ORIGIN), both served by the test on loopback, call the server.
  const token = (await (await fetch(`${server}/dev/token`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ email: "cors@example.com" }),
  })).json()).token;
  for (const [name, origin] of [["corsAllowed", appOrigin], ["corsOther", otherOrigin]]) {
    await page.goto(`${origin}/`);
    report[name] = await page.evaluate(
      async ({ server, token }) => {
        try {
          const response = await fetch(`${server}/v1/me`, {
            headers: { authorization: `Bearer ${token}` },
            credentials: "include",
          });
          const body = await response.json();
          return { status: response.status, email: body.clerk && body.clerk.email };
        } catch (error) {
          return { blocked: String(error) };
        }
      },
      { server, token },
    );
  }
} finally {
  await browser.close();
}
console.log(JSON.stringify(report));
