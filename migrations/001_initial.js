// The initial schema: services, workers, tokens, tasks (docs/protocol.md section 8).
// Append-only: change the schema with a new numbered file, never by editing this one.
// Times are integers in ms since the epoch. Same behaviour on MySQL/MariaDB and SQLite:
// on MySQL every table is InnoDB, utf8mb4 with a binary collation, so that names compare
// exactly (case and accents) as they do in SQLite.

/** @param {import('knex').Knex} knex */
function isMysql(knex) {
  return knex.client.config.client === 'mysql2' || knex.client.config.client === 'mysql';
}

/** @param {import('knex').Knex} knex */
export async function up(knex) {
  const mysql = isMysql(knex);
  // knex's text and binary are 64 KB on MySQL; results, errors and media need more.
  const longText = (t, name) => (mysql ? t.specificType(name, 'longtext') : t.text(name));
  const longBlob = (t, name) => (mysql ? t.specificType(name, 'longblob') : t.binary(name));
  const common = (t) => {
    if (mysql) {
      t.engine('InnoDB');
      t.charset('utf8mb4');
      t.collate('utf8mb4_bin');
    }
  };

  await knex.schema.createTable('services', (t) => {
    common(t);
    t.increments('id').primary();
    t.string('name', 64).notNullable().unique();
    t.text('description').notNullable();
    longText(t, 'me').notNullable();
    t.bigInteger('created_at').notNullable();
    t.bigInteger('updated_at').notNullable();
  });

  await knex.schema.createTable('workers', (t) => {
    common(t);
    t.increments('id').primary();
    // 512 characters: a unique index on MariaDB's utf8mb4 allows at most 3072 bytes.
    t.string('url', 512).notNullable().unique();
    t.boolean('enabled').notNullable().defaultTo(true);
    t.bigInteger('created_at').notNullable();
  });

  await knex.schema.createTable('tokens', (t) => {
    common(t);
    t.increments('id').primary();
    t.string('kind', 16).notNullable();
    t.string('name', 64).notNullable();
    t.string('service', 64).nullable();
    t.specificType('hash', 'char(64)').notNullable();
    t.bigInteger('created_at').notNullable();
    t.bigInteger('revoked_at').nullable();
    t.unique(['kind', 'name']);
    t.index(['hash']);
  });

  await knex.schema.createTable('tasks', (t) => {
    common(t);
    t.string('id', 32).primary();
    t.integer('service_id').unsigned().notNullable().references('id').inTable('services');
    t.string('status', 16).notNullable();
    t.integer('attempts').notNullable().defaultTo(0);
    // Seq of the task's latest event, so that its end event keeps its seq across a restart.
    t.integer('seq').nullable();
    t.double('progress').nullable();
    longText(t, 'message').nullable();
    longText(t, 'error').nullable();
    longText(t, 'result').nullable();
    longBlob(t, 'attachments').nullable();
    t.bigInteger('created_at').notNullable();
    t.bigInteger('started_at').nullable();
    t.bigInteger('finished_at').nullable();
    t.index(['status']);
    t.index(['finished_at']);
  });
}

/** @param {import('knex').Knex} knex */
export async function down(knex) {
  await knex.schema.dropTableIfExists('tasks');
  await knex.schema.dropTableIfExists('tokens');
  await knex.schema.dropTableIfExists('workers');
  await knex.schema.dropTableIfExists('services');
}
