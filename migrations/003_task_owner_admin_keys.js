// Whose task it is (docs/protocol.md, "Whose task it is"): `tasks.owner` names the client key
// that submitted the task (NULL while no key is required), so that an ended task read from the
// database after a restart is still only its owner's; `tokens.admin` marks the client keys made
// with `utils-hub keys create NAME --admin`, which see every task.

/** @param {import('knex').Knex} knex */
export async function up(knex) {
  await knex.schema.alterTable('tasks', (t) => {
    t.string('owner', 80).nullable();
  });
  await knex.schema.alterTable('tokens', (t) => {
    t.boolean('admin').notNullable().defaultTo(false);
  });
}

/** @param {import('knex').Knex} knex */
export async function down(knex) {
  await knex.schema.alterTable('tokens', (t) => {
    t.dropColumn('admin');
  });
  await knex.schema.alterTable('tasks', (t) => {
    t.dropColumn('owner');
  });
}
