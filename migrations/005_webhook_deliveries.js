// Webhook deliveries (docs/protocol.md section 12): an outbox. A row is written when a task's
// event is due to its webhook, and a sender in each hub POSTs due rows, retrying on a schedule
// until a 2xx, a 410 or 24 hours, so that a restart (or a dead hub) loses none.

/** @param {import('knex').Knex} knex */
function isMysql(knex) {
  return knex.client.config.client === 'mysql2' || knex.client.config.client === 'mysql';
}

/** @param {import('knex').Knex} knex */
export async function up(knex) {
  const mysql = isMysql(knex);
  await knex.schema.createTable('webhook_deliveries', (t) => {
    if (mysql) {
      t.engine('InnoDB');
      t.charset('utf8mb4');
      t.collate('utf8mb4_bin');
    }
    // The `webhook-id` header: the same on every try.
    t.string('id', 40).primary();
    t.string('task_id', 32).notNullable();
    t.string('url', 2048).notNullable();
    // started, progress or completed.
    t.string('event', 16).notNullable();
    // The JSON body, signed as it is.
    if (mysql) t.specificType('body', 'longtext').notNullable();
    else t.text('body').notNullable();
    // pending, delivered, failed (gave up or refused) or gone (the receiver answered 410).
    t.string('status', 16).notNullable();
    t.integer('attempts').notNullable().defaultTo(0);
    // When the next try is due (ms since the epoch); while a try runs, a lease past its timeout.
    t.bigInteger('next_at').notNullable();
    t.integer('last_status').nullable();
    t.string('last_error', 255).nullable();
    t.bigInteger('created_at').notNullable();
    t.bigInteger('updated_at').notNullable();
    t.index(['status', 'next_at']);
    t.index(['task_id']);
  });
}

/** @param {import('knex').Knex} knex */
export async function down(knex) {
  await knex.schema.dropTable('webhook_deliveries');
}
