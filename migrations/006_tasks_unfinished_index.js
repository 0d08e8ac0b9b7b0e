// On SQLite, the index of `tasks.status` becomes a partial index of the unfinished tasks only.
// Every task changes status two or three times, and the full index's upkeep was a third of the
// cost of writing a task row (docs/performance.md); the one query that needs it, marking the
// tasks a stopped hub left unfinished as interrupted, asks for exactly the rows the partial index
// holds. MariaDB has no partial indexes: there the full index stays.

/** @param {import('knex').Knex} knex */
function isMysql(knex) {
  return knex.client.config.client === 'mysql2' || knex.client.config.client === 'mysql';
}

/** @param {import('knex').Knex} knex */
export async function up(knex) {
  if (isMysql(knex)) return;
  await knex.schema.raw('drop index if exists `tasks_status_index`');
  await knex.schema.raw("create index `tasks_unfinished_index` on `tasks` (`status`) where `status` in ('queued', 'running')");
}

/** @param {import('knex').Knex} knex */
export async function down(knex) {
  if (isMysql(knex)) return;
  await knex.schema.raw('drop index if exists `tasks_unfinished_index`');
  await knex.schema.raw('create index `tasks_status_index` on `tasks` (`status`)');
}
