// A task's result media may live in a file beside a SQLite database rather than in its
// `attachments` blob: `media_file` names that file (in the folder `<database file>-media/`).
// SQLite writes a megabyte blob page by page, twice (log, then database); a file is one write.
// On MySQL/MariaDB the column stays NULL: media stay in the table.

/** @param {import('knex').Knex} knex */
export async function up(knex) {
  await knex.schema.alterTable('tasks', (t) => {
    t.string('media_file', 80).nullable();
  });
}

/** @param {import('knex').Knex} knex */
export async function down(knex) {
  await knex.schema.alterTable('tasks', (t) => {
    t.dropColumn('media_file');
  });
}
