// The URL of a task's `completed` webhook, on its row (docs/delivery.md "Where the rows go"): a
// task left unfinished by a crash is marked `failed` `interrupted` at the next start, and its
// `completed` delivery is written then, in the same transaction, to the URL read here. Null for a
// task without one. Written with the task's first row and never changed after.

/** @param {import('knex').Knex} knex */
export async function up(knex) {
  await knex.schema.alterTable('tasks', (t) => {
    t.string('webhook', 2048).nullable();
  });
}

/** @param {import('knex').Knex} knex */
export async function down(knex) {
  await knex.schema.alterTable('tasks', (t) => {
    t.dropColumn('webhook');
  });
}
