// Idempotency keys (docs/protocol.md section 12): one row per key and client-key scope, made by
// the first submit that carries the key. The primary key is the arbiter between concurrent
// submits (and between hubs sharing one database): the insert that loses reads the winner's row.

/** @param {import('knex').Knex} knex */
function isMysql(knex) {
  return knex.client.config.client === 'mysql2' || knex.client.config.client === 'mysql';
}

/** @param {import('knex').Knex} knex */
export async function up(knex) {
  const mysql = isMysql(knex);
  await knex.schema.createTable('idempotency_keys', (t) => {
    if (mysql) {
      t.engine('InnoDB');
      t.charset('utf8mb4');
      t.collate('utf8mb4_bin');
    }
    // sha256 hex of the client key that submitted, or '' when none was presented.
    t.string('scope', 64).notNullable();
    // Printable ASCII, up to 255 characters: 255 x 4 + 64 x 4 bytes stays under MariaDB's 3072.
    t.string('key', 255).notNullable();
    t.string('task_id', 32).notNullable();
    t.integer('service_id').notNullable();
    // sha256 hex of the canonical service_id and args, to tell a repeat from a mismatch.
    t.specificType('args_hash', 'char(64)').notNullable();
    t.bigInteger('created_at').notNullable();
    t.primary(['scope', 'key']);
    t.index(['created_at']);
  });
}

/** @param {import('knex').Knex} knex */
export async function down(knex) {
  await knex.schema.dropTable('idempotency_keys');
}
