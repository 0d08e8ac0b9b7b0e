#!/usr/bin/env node
/**
 * The `utils-hub` command (docs/protocol.md section 9): `start` runs the hub; the other commands
 * administer its database (migrations, the workers it dials, worker tokens, client keys).
 * Exit status: 0 done, 1 failed (bad value, unknown name, database unreachable), 2 bad usage.
 */
import { parseArgs } from 'node:util';
import type { Knex } from 'knex';
import { envDbUrl } from './config.js';
import { DEFAULT_DB_URL, migrate, openDb, redactDbUrl } from './db/index.js';
// The table modules one by one, not store/index.js: the task store loads the protocol's
// validators, which the command line does not need and which take half a second to compile.
import { StoreError } from './store/errors.js';
import { createToken, listTokens, revokeToken, type TokenKind } from './store/tokens.js';
import { addWorker, listWorkers, removeWorker, setWorkerEnabled } from './store/workers.js';
import { listServices, removeService } from './store/services.js';
import { mediaDirOf } from './store/task-media.js';
import { listDeliveries } from './store/webhook-deliveries.js';

/** Bad usage: exit status 2. */
class UsageError extends Error {}

const DB_HELP = `  --db URL    the database: sqlite:PATH or mysql://user:pass@host:port/name
              (default: HUB_DB, else ${DEFAULT_DB_URL})`;

const HELP = `Usage: utils-hub <command> [options]

Commands:
  start      run the hub (utils-hub start --help)
  migrate    apply the pending database migrations
  workers    the workers the hub dials: add URL | remove URL | enable URL | disable URL | list
  services   the services the database knows: list | remove NAME
  tokens     worker tokens: create NAME [--service NAME] | list | revoke NAME
  keys       client API keys: create NAME [--admin] | list | revoke NAME
  webhooks   webhook deliveries: list [--failed]

Options of every command but start:
${DB_HELP}
  -h, --help  help for the command

Run 'utils-hub <command> --help' for more.`;

type Values = { db?: string; service?: string; json?: boolean; admin?: boolean; failed?: boolean; help?: boolean };

interface Command {
  help: string;
  options: { service?: { type: 'string' }; json?: { type: 'boolean' }; admin?: { type: 'boolean' }; failed?: { type: 'boolean' } };
  run(db: Knex, action: string | undefined, args: string[], values: Values): Promise<void>;
}

function out(line: string): void {
  process.stdout.write(`${line}\n`);
}

function note(line: string): void {
  process.stderr.write(`${line}\n`);
}

function iso(ms: number | null): string {
  return ms === null ? '-' : new Date(ms).toISOString();
}

/** Prints rows as columns padded to their widest cell (the last column unpadded). */
function table(header: string[], rows: string[][]): void {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  for (const r of [header, ...rows]) out(r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]))).join('  '));
}

/** Checks the positional arguments of an action: exactly `names`. */
function expectArgs(command: string, action: string, args: string[], names: string[]): string[] {
  if (args.length < names.length) throw new UsageError(`${command} ${action}: missing ${names[args.length]}`);
  if (args.length > names.length) throw new UsageError(`${command} ${action}: unexpected argument "${args[names.length]}"`);
  return args;
}

function noService(command: string, action: string, values: Values): void {
  if (values.service !== undefined) throw new UsageError(`${command} ${action}: --service applies to "create" only`);
}

const migrateCommand: Command = {
  help: `Usage: utils-hub migrate [--db URL]

Applies the pending migrations of the database (start does it too).

${DB_HELP}`,
  options: {},
  // Migrations ran before `run` (see main), so here they are reported only.
  async run() {},
};

const workersCommand: Command = {
  help: `Usage: utils-hub workers add URL | remove URL | enable URL | disable URL | list [--json] [--db URL]

The workers that the hub dials, by base URL (http or https, such as http://10.0.0.5:9001): the
hub reads {URL}/me, then opens {URL}/ws, and follows changes within 5 s.

  add URL       list a worker (enabled)
  remove URL    forget a worker
  enable URL    dial it again
  disable URL   stop dialing it, keeping it listed
  list          print the workers (--json: as JSON)

${DB_HELP}`,
  options: { json: { type: 'boolean' } },
  async run(db, action, args, values) {
    switch (action) {
      case 'add': {
        const [url] = expectArgs('workers', action, args, ['URL']);
        const row = await addWorker(db, url);
        out(`added worker ${row.url}`);
        return;
      }
      case 'remove': {
        const [url] = expectArgs('workers', action, args, ['URL']);
        await removeWorker(db, url);
        out(`removed worker ${url}`);
        return;
      }
      case 'enable':
      case 'disable': {
        const [url] = expectArgs('workers', action, args, ['URL']);
        await setWorkerEnabled(db, url, action === 'enable');
        out(`${action}d worker ${url}`);
        return;
      }
      case 'list': {
        expectArgs('workers', action, args, []);
        const rows = await listWorkers(db);
        if (values.json) return out(JSON.stringify(rows));
        if (rows.length === 0) return note('no workers listed');
        table(
          ['URL', 'ENABLED', 'ADDED'],
          rows.map((w) => [w.url, w.enabled ? 'yes' : 'no', iso(w.created_at)]),
        );
        return;
      }
      default:
        throw new UsageError(action === undefined ? 'workers: missing action (add, remove, enable, disable, list)' : `workers: unknown action "${action}"`);
    }
  },
};

const servicesCommand: Command = {
  help: `Usage: utils-hub services list [--json] | remove NAME [--db URL]

The services the database knows, by name, each with the id clients use. A service stays known
(and on the operator page, offline) after its last worker is gone, until it is removed.

  list          print the services (--json: as JSON)
  remove NAME   forget a service that no worker serves any more, with its ended tasks; refused
                while it has unfinished tasks. A worker that comes back under that name gets a
                new id. A running hub forgets it at its next start.

${DB_HELP}`,
  options: { json: { type: 'boolean' } },
  async run(db, action, args, values) {
    switch (action) {
      case 'list': {
        expectArgs('services', action, args, []);
        const rows = await listServices(db);
        if (values.json)
          return out(
            JSON.stringify(rows.map((s) => ({ id: s.id, name: s.name, description: s.description, created_at: s.created_at, updated_at: s.updated_at }))),
          );
        if (rows.length === 0) return note('no services known');
        table(
          ['ID', 'NAME', 'UPDATED', 'DESCRIPTION'],
          rows.map((s) => [String(s.id), s.name, iso(s.updated_at), s.description.replace(/\s+/g, ' ').slice(0, 60)]),
        );
        return;
      }
      case 'remove': {
        const [name] = expectArgs('services', action, args, ['NAME']);
        const r = await removeService(db, name, mediaDirOf(db));
        out(`removed service ${r.name} (id ${r.id}) and ${r.tasks} ended task${r.tasks === 1 ? '' : 's'}`);
        return;
      }
      default:
        throw new UsageError(action === undefined ? 'services: missing action (list, remove)' : `services: unknown action "${action}"`);
    }
  },
};

function tokenCommand(command: 'tokens' | 'keys', kind: TokenKind): Command {
  const what = kind === 'worker' ? 'worker token' : 'client key';
  const help =
    kind === 'worker'
      ? `Usage: utils-hub tokens create NAME [--service NAME] | list [--json] | revoke NAME [--db URL]

Worker tokens: what a worker presents when it dials the hub (Authorization: Bearer TOKEN).
The database keeps only their hash; create prints the token once.

  create NAME [--service S]   make a token; with --service, good for service S only
  list                        print the tokens (never the secrets; --json: as JSON)
  revoke NAME                 revoke a token

${DB_HELP}`
      : `Usage: utils-hub keys create NAME [--admin] | list [--json] | revoke NAME [--db URL]

Client API keys: once one exists, every route but /healthz, /readyz and the page's files needs
Authorization: Bearer KEY (?key= on a WebSocket upgrade only). A task belongs to the key that
submitted it: other keys read it as unknown, except admin keys. The database keeps only their
hash; create prints the key once.

  create NAME   make a key (--admin: a key that sees and cancels every task)
  list          print the keys (never the secrets; --json: as JSON)
  revoke NAME   revoke a key

${DB_HELP}`;
  return {
    help,
    options: kind === 'worker' ? { service: { type: 'string' }, json: { type: 'boolean' } } : { json: { type: 'boolean' }, admin: { type: 'boolean' } },
    async run(db, action, args, values) {
      switch (action) {
        case 'create': {
          const [name] = expectArgs(command, action, args, ['NAME']);
          const secret = await createToken(db, kind, name, { service: values.service, admin: values.admin });
          out(secret);
          const scope =
            kind === 'worker' ? (values.service ? ` for service "${values.service}"` : ' for any service') : values.admin ? ' (admin: sees every task)' : '';
          note(`created ${what} "${name}"${scope}; it is shown only this once: store it now`);
          return;
        }
        case 'list': {
          noService(command, action, values);
          expectArgs(command, action, args, []);
          const rows = await listTokens(db, kind);
          if (values.json) return out(JSON.stringify(rows));
          if (rows.length === 0) return note(`no ${what}s`);
          if (kind === 'worker') {
            table(
              ['NAME', 'SERVICE', 'CREATED'],
              rows.map((t) => [t.name, t.service ?? '*', iso(t.created_at)]),
            );
          } else {
            table(
              ['NAME', 'ADMIN', 'CREATED'],
              rows.map((t) => [t.name, t.admin ? 'yes' : 'no', iso(t.created_at)]),
            );
          }
          return;
        }
        case 'revoke': {
          noService(command, action, values);
          const [name] = expectArgs(command, action, args, ['NAME']);
          await revokeToken(db, kind, name);
          out(`revoked ${what} "${name}"`);
          return;
        }
        default:
          throw new UsageError(action === undefined ? `${command}: missing action (create, list, revoke)` : `${command}: unknown action "${action}"`);
      }
    },
  };
}

const webhooksCommand: Command = {
  help: `Usage: utils-hub webhooks list [--failed] [--json] [--db URL]

Webhook deliveries (docs/protocol.md section 12) that are pending (tried again later) or failed
(given up after 24 hours, or refused), newest first; with --failed, failed ones only.

${DB_HELP}`,
  options: { failed: { type: 'boolean' }, json: { type: 'boolean' } },
  async run(db, action, args, values) {
    if (action !== 'list') throw new UsageError(action === undefined ? 'webhooks: missing action (list)' : `webhooks: unknown action "${action}"`);
    expectArgs('webhooks', action, args, []);
    const rows = (await listDeliveries(db, { failedOnly: values.failed === true })).map(({ body: _body, ...r }) => r);
    if (values.json) return out(JSON.stringify(rows));
    if (rows.length === 0) return note(values.failed ? 'no failed webhook deliveries' : 'no pending or failed webhook deliveries');
    table(
      ['ID', 'TASK', 'EVENT', 'STATUS', 'TRIES', 'LAST', 'NEXT', 'URL'],
      rows.map((d) => [
        d.id,
        d.task_id,
        d.event,
        d.status,
        String(d.attempts),
        d.last_error ?? (d.last_status === null ? '-' : String(d.last_status)),
        d.status === 'pending' ? iso(d.next_at) : '-',
        d.url,
      ]),
    );
  },
};

const COMMANDS: Record<string, Command> = {
  migrate: migrateCommand,
  workers: workersCommand,
  services: servicesCommand,
  tokens: tokenCommand('tokens', 'worker'),
  keys: tokenCommand('keys', 'client'),
  webhooks: webhooksCommand,
};

/** One line for a person: no stack, no line breaks. */
function oneLine(err: unknown): string {
  const message = err instanceof Error ? err.message : String(err);
  return message.replace(/\s*\n\s*/g, ' ').trim() || 'unknown error';
}

/** Runs the command line with the arguments after the program's name; returns the exit status. */
export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined) {
    note(HELP);
    return 2;
  }
  if (name === '-h' || name === '--help' || name === 'help') {
    const topic = name === 'help' ? rest[0] : undefined;
    out(topic !== undefined && COMMANDS[topic] ? COMMANDS[topic].help : HELP);
    return 0;
  }
  if (name === 'start') {
    const { runStart } = await import('./start.js');
    await runStart(rest);
    return typeof process.exitCode === 'number' ? process.exitCode : 0;
  }
  const command = Object.hasOwn(COMMANDS, name) ? COMMANDS[name] : undefined;
  if (!command) {
    note(`utils-hub: unknown command "${name}" (run 'utils-hub --help')`);
    return 2;
  }

  let values: Values;
  let positionals: string[];
  try {
    const parsed = parseArgs({
      args: rest,
      options: { ...command.options, db: { type: 'string' }, help: { type: 'boolean', short: 'h' } },
      allowPositionals: true,
      strict: true,
    });
    values = parsed.values as Values;
    positionals = parsed.positionals;
  } catch (err) {
    // Node's message goes on about `--`; its first sentence says what is wrong.
    note(`utils-hub ${name}: ${oneLine(err).split('. ')[0]} (run 'utils-hub ${name} --help')`);
    return 2;
  }
  if (values.help) {
    out(command.help);
    return 0;
  }
  const [action, ...args] = positionals;
  if (name === 'migrate' && action !== undefined) {
    note(`utils-hub migrate: unexpected argument "${action}" (run 'utils-hub migrate --help')`);
    return 2;
  }

  const url = values.db ?? envDbUrl();
  let db: Knex | undefined;
  try {
    // The command reports failures itself: knex's own warnings would say the same, less clearly.
    db = openDb(url, { connectTimeoutMs: 5000, log: () => {} });
  } catch (err) {
    note(`utils-hub ${name}: ${oneLine(err)}`);
    return 1;
  }
  try {
    let applied: string[];
    try {
      // Every command brings the schema up to date first, so that an operator can create tokens
      // or list workers before the hub's first start.
      applied = await migrate(db);
    } catch (err) {
      throw new Error(`cannot use the database ${redactDbUrl(url)}: ${oneLine(err)}`);
    }
    if (name === 'migrate') {
      if (applied.length === 0) out('database schema is up to date');
      for (const m of applied) out(`applied migration ${m}`);
    }
    await command.run(db, action, args, values);
    return 0;
  } catch (err) {
    if (err instanceof UsageError) {
      note(`utils-hub ${err.message} (run 'utils-hub ${name} --help')`);
      return 2;
    }
    note(`utils-hub ${name}: ${err instanceof StoreError ? '' : 'error: '}${oneLine(err)}`);
    return 1;
  } finally {
    await db.destroy().catch(() => {});
  }
}

process.exitCode = await main(process.argv.slice(2)).catch((err: unknown) => {
  note(`utils-hub: ${oneLine(err)}`);
  return 1;
});
