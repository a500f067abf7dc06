// The frontend's side of the flow, as docs/frontend.md shows it (a test keeps the two
// the same): Clerk's session token in, an InstantDB session out.
import { init } from "@instantdb/core";

/**
 * A client of clerk-instant-server for one InstantDB app.
 * `server` is the server's URL; the rest is what InstantDB's `init` takes.
 */
export function connect({ server, ...instantConfig }) {
  const db = init(instantConfig);

  // Calls the server with the Clerk session's current token (Clerk refreshes it).
  async function call(clerk, method, path) {
    const token = await clerk.session.getToken();
    const response = await fetch(`${server}${path}`, {
      method,
      headers: { authorization: `Bearer ${token}` },
    });
    const body = await response.json();
    if (!response.ok) {
      // e.g. 401 token-expired, 403 email-not-verified, 429 rate-limited.
      const error = new Error(`${path}: ${body.error.code}: ${body.error.message}`);
      error.code = body.error.code;
      throw error;
    }
    return body;
  }

  return {
    db,

    /** Once Clerk has a session: an InstantDB session for the same user. */
    async signIn(clerk) {
      const { refresh_token } = await call(clerk, "POST", "/v1/session");
      await db.auth.signInWithToken(refresh_token);
    },

    /** Ends the InstantDB session (on the server and here), then Clerk's. */
    async signOut(clerk) {
      await call(clerk, "DELETE", "/v1/session");
      // The server has signed the refresh token out already.
      await db.auth.signOut({ invalidateToken: false });
      await clerk.signOut();
    },
  };
}
