// Drives the InstantDB emulator with the official @instantdb/admin SDK, pointed at it
// through `apiURI`. Run by tests/it/node.rs; prints one JSON line on success and exits
// non-zero with the reason otherwise.
import assert from 'node:assert/strict';
import { init, id, lookup } from '@instantdb/admin';

const apiURI = process.env.INSTANT_API_URI;
const appId = process.env.INSTANT_APP_ID;
const adminToken = process.env.INSTANT_APP_ADMIN_TOKEN;
assert.ok(apiURI && appId && adminToken, 'INSTANT_API_URI, INSTANT_APP_ID and INSTANT_APP_ADMIN_TOKEN must be set');

const db = init({ appId, adminToken, apiURI });
const email = 'node@example.com';

// Create a token (and the user), then verify it and get the user back.
const token = await db.auth.createToken({ email });
assert.match(token, /^[0-9a-f-]{36}$/);
const user = await db.auth.verifyToken(token);
assert.equal(user.email, email);
assert.equal(user.refresh_token, token);
const byEmail = await db.auth.getUser({ email });
assert.equal(byEmail.id, user.id);
const byToken = await db.auth.getUser({ refresh_token: token });
assert.equal(byToken.id, user.id);

// Write: update, link, merge, lookup.
const goalId = id();
const todoId = id();
const tx = await db.transact([
  db.tx.goals[goalId].update({ title: 'Get fit', meta: { a: 1 } }),
  db.tx.todos[todoId].update({ title: 'run' }),
  db.tx.goals[goalId].link({ todos: todoId }),
  db.tx.goals[goalId].merge({ meta: { b: 2 } }),
]);
assert.equal(typeof tx['tx-id'], 'number');
await db.transact(db.tx.profiles[lookup('handle', 'node')].update({ name: 'Node' }));

// Read: where, nested links, limit; as the admin and as the user.
const result = await db.query({ goals: { $: { where: { title: 'Get fit' }, limit: 1 }, todos: {} } });
assert.equal(result.goals.length, 1);
assert.equal(result.goals[0].id, goalId);
assert.deepEqual(result.goals[0].meta, { a: 1, b: 2 });
assert.equal(result.goals[0].todos[0].title, 'run');
const profiles = await db.query({ profiles: { $: { where: { handle: 'node' } } } });
assert.equal(profiles.profiles[0].name, 'Node');
const asUser = await db.asUser({ token }).query({ todos: { goals: {} } });
assert.equal(asUser.todos[0].goals[0].id, goalId);
const users = await db.query({ $users: { $: { where: { email } } } });
assert.equal(users.$users[0].id, user.id);

// Sign out: the token dies, and the SDK reports InstantDB's error.
await db.auth.signOut({ email });
await assert.rejects(db.auth.verifyToken(token), (error) => {
  assert.equal(error.status, 400);
  assert.equal(error.body.type, 'record-not-found');
  return true;
});

// Delete the user.
const deleted = await db.auth.deleteUser({ email });
assert.equal(deleted.id, user.id);
assert.equal(await db.auth.getUser({ email }), null);

// A bad admin token is InstantDB's 400, not a 401.
const wrong = init({ appId, adminToken: '00000000-0000-4000-8000-000000000000', apiURI });
await assert.rejects(wrong.query({ goals: {} }), (error) => {
  assert.equal(error.status, 400);
  assert.equal(error.body.message, 'Record not found: app-admin-token');
  return true;
});

console.log(JSON.stringify({ ok: true, userId: user.id, goalId }));
