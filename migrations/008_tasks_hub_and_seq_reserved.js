// Two columns of `tasks` for cluster mode (docs/cluster.md "Seq across attempts" and "A hub may
// die"): `hub_id`, the hub that wrote the row last (null for a hub alone), so that a survivor can
// tell a queued row that no live hub holds; `seq_reserved`, the highest `seq` the hub running the
// task may send (null for a hub alone), so that an attempt after a takeover numbers its events
// above every `seq` any client may have had. Both are written as part of the row's upsert, never
// lowered by it (a null leaves them as they are).

/** @param {import('knex').Knex} knex */
export async function up(knex) {
  await knex.schema.alterTable('tasks', (t) => {
    t.string('hub_id', 64).nullable();
    t.bigInteger('seq_reserved').nullable();
  });
}

/** @param {import('knex').Knex} knex */
export async function down(knex) {
  await knex.schema.alterTable('tasks', (t) => {
    t.dropColumn('hub_id');
    t.dropColumn('seq_reserved');
  });
}
