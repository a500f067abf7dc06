// Runs the frontend guide's snippet (frontend.js, as docs/frontend.md shows it) with
// the real @instantdb/core in headless Chromium. @instantdb/core runs in browsers only
// (on Node its init does nothing), so Node drives a page. Run by
// apps/server/tests/it/browser.rs with SERVER_URL (a dev-mode server), APP_ORIGIN (the
// app's page, which serves frontend.js, @instantdb/core and, under /instant, the
// InstantDB emulator) and INSTANT_APP_ID. Prints one JSON line: what each step showed.
import { chromium } from "playwright-core";

const server = process.env.SERVER_URL;
const appOrigin = process.env.APP_ORIGIN;
const appId = process.env.INSTANT_APP_ID;
const executablePath = process.env.CHROMIUM || "/usr/bin/chromium";
if (!server || !appOrigin || !appId) {
  throw new Error("SERVER_URL, APP_ORIGIN and INSTANT_APP_ID must be set");
}

const token = (await (await fetch(`${server}/dev/token`, {
  method: "POST",
  headers: { "content-type": "application/json" },
  body: JSON.stringify({ email: "frontend@example.com" }),
})).json()).token;

const browser = await chromium.launch({ executablePath, headless: true, args: ["--no-sandbox"] });
let report;
try {
  const page = await browser.newPage();
  page.setDefaultTimeout(20000);
  await page.goto(`${appOrigin}/`);
  report = await page.evaluate(
    async ({ server, appOrigin, appId, token }) => {
      const { connect } = await import("/frontend.js");
      const report = {};
      // Clerk's browser SDK, as far as the snippet uses it.
      let clerkSignedOut = false;
      const clerk = {
        session: { getToken: async () => token },
        signOut: async () => {
          clerkSignedOut = true;
        },
      };
      const client = connect({
        server,
        appId,
        apiURI: `${appOrigin}/instant`,
        // The emulator has no websocket (queries and transactions of
        // @instantdb/core use one): the SDK keeps retrying it, auth works without.
        websocketURI: `${appOrigin.replace("http", "ws")}/instant/runtime/session`,
        devtool: false,
      });
      const states = [];
      client.db.subscribeAuth((auth) => {
        states.push(auth.user ? auth.user.email : auth.error ? `error ${auth.error.message}` : null);
      });

      await client.signIn(clerk);
      const user = await client.db.getAuth();
      report.signedIn = { email: user && user.email, hasRefreshToken: typeof user?.refresh_token === "string" };
      const refreshToken = user && user.refresh_token;

      await client.signOut(clerk);
      report.signedOut = { user: await client.db.getAuth(), clerkSignedOut };
      // The refresh token the SDK held is dead at InstantDB.
      try {
        await client.db.auth.signInWithToken(refreshToken);
        report.reuse = "accepted";
      } catch (error) {
        report.reuse = "refused";
        await client.db.auth.signOut({ invalidateToken: false });
      }
      // And the server refuses the Clerk session it signed out.
      try {
        await client.signIn(clerk);
        report.signInAgain = "accepted";
      } catch (error) {
        report.signInAgain = error.code;
      }
      report.states = states;
      return report;
    },
    { server, appOrigin, appId, token },
  );
} finally {
  await browser.close();
}
console.log(JSON.stringify(report));
