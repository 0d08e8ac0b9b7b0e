/**
 * Reads a V8 .cpuprofile (from `node --cpu-prof`) and prints where the time went: the top frames
 * by self time, the time by package or area (the hub's own code, the protocol package, ws,
 * fastify, knex, the garbage collector, ...), and the hub's own functions by total (inclusive)
 * time, each as a share of the time the process was not idle.
 *
 *   node --import tsx bench/profile-summary.ts PROFILE.cpuprofile [--top 25] [--tasks N]
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import path from 'node:path';

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
  columnNumber: number;
}
interface ProfileNode {
  id: number;
  callFrame: CallFrame;
  children?: number[];
}
interface CpuProfile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
  startTime: number;
  endTime: number;
}

/** One row of a summary: a frame or an area, its time in ms, its share of busy time in %, and µs per task when the task count is known. */
export interface Row {
  name: string;
  ms: number;
  pct: number;
  usPerTask?: number;
}

export interface ProfileSummary {
  file: string;
  /** Wall time the profile covers, ms. */
  totalMs: number;
  /** Time not spent idle, ms: the base of every percentage. */
  busyMs: number;
  /** Tasks the process handled while profiled, when known: rows then carry µs per task. */
  tasks?: number;
  self: Row[];
  areas: Row[];
  /** Functions of the project itself (server/, protocol/) by inclusive time. */
  projectTotal: Row[];
}

const ROOT = fileURLToPath(new URL('..', import.meta.url));

function shortUrl(url: string): string {
  let u = url.startsWith('file://') ? fileURLToPath(url) : url;
  if (u.startsWith(ROOT)) u = u.slice(ROOT.length);
  const nm = u.lastIndexOf('node_modules/');
  if (nm >= 0) u = u.slice(nm);
  return u;
}

function frameName(cf: CallFrame): string {
  const fn = cf.functionName || '(anonymous)';
  if (!cf.url) return fn;
  return `${fn} ${shortUrl(cf.url)}:${cf.lineNumber + 1}`;
}

/** The package or area a frame belongs to. */
function areaOf(cf: CallFrame): string {
  if (!cf.url) return cf.functionName.startsWith('(') ? cf.functionName : '(native)';
  const u = shortUrl(cf.url);
  const nm = u.match(/^node_modules\/((?:@[^/]+\/)?[^/]+)/);
  if (nm) return nm[1];
  if (u.startsWith('node:')) return 'node (core)';
  const top = u.split('/')[0];
  if (top === 'server' || top === 'protocol') return `${top}/ (project)`;
  if (top === 'bench') return 'bench/ (baseline)';
  return top;
}

function isProject(cf: CallFrame): boolean {
  const u = shortUrl(cf.url);
  return u.startsWith('server/') || u.startsWith('protocol/');
}

function rows(map: Map<string, number>, busyUs: number, top: number, tasks?: number): Row[] {
  return [...map.entries()]
    .sort((a, b) => b[1] - a[1])
    .slice(0, top)
    .map(([name, us]) =>
      tasks ? { name, ms: us / 1000, pct: (us / busyUs) * 100, usPerTask: us / tasks } : { name, ms: us / 1000, pct: (us / busyUs) * 100 },
    );
}

/** Summarises one .cpuprofile file; `tasks`, when given, is how many tasks it handled meanwhile. */
export function summariseProfile(file: string, top = 25, tasks?: number): ProfileSummary {
  const profile = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile;
  const byId = new Map<number, ProfileNode>();
  const parent = new Map<number, number>();
  for (const n of profile.nodes) {
    byId.set(n.id, n);
    for (const c of n.children ?? []) parent.set(c, n.id);
  }
  const self = new Map<string, number>();
  const areas = new Map<string, number>();
  const total = new Map<string, number>();
  let busyUs = 0;
  let totalUs = 0;
  const { samples, timeDeltas } = profile;
  for (let i = 0; i < samples.length; i++) {
    // A sample stands for the time until the next one (the last for the mean interval).
    const dt = i + 1 < timeDeltas.length ? timeDeltas[i + 1] : 0;
    if (dt <= 0) continue;
    totalUs += dt;
    const node = byId.get(samples[i]);
    if (!node) continue;
    if (node.callFrame.functionName === '(idle)') continue;
    busyUs += dt;
    const name = frameName(node.callFrame);
    self.set(name, (self.get(name) ?? 0) + dt);
    const area = areaOf(node.callFrame);
    areas.set(area, (areas.get(area) ?? 0) + dt);
    // Inclusive time of the project's functions: each function once per sample, however deep.
    const seen = new Set<string>();
    for (let id: number | undefined = node.id; id !== undefined; id = parent.get(id)) {
      const cf = byId.get(id)!.callFrame;
      if (!cf.url || !isProject(cf)) continue;
      const key = frameName(cf);
      if (seen.has(key)) continue;
      seen.add(key);
      total.set(key, (total.get(key) ?? 0) + dt);
    }
  }
  return {
    file,
    totalMs: totalUs / 1000,
    busyMs: busyUs / 1000,
    ...(tasks ? { tasks } : {}),
    self: rows(self, busyUs, top, tasks),
    areas: rows(areas, busyUs, top, tasks),
    projectTotal: rows(total, busyUs, top, tasks),
  };
}

/** The summary as markdown tables. */
export function formatSummary(s: ProfileSummary): string {
  const per = s.tasks !== undefined;
  const table = (title: string, rs: Row[]) =>
    [
      `| ${title} | ms | % of busy |${per ? ' µs/task |' : ''}`,
      `| --- | ---: | ---: |${per ? ' ---: |' : ''}`,
      ...rs.map((r) => `| \`${r.name}\` | ${r.ms.toFixed(0)} | ${r.pct.toFixed(1)} |${per ? ` ${r.usPerTask!.toFixed(1)} |` : ''}`),
    ].join('\n');
  return [
    `Profile ${path.basename(s.file)}: ${(s.totalMs / 1000).toFixed(1)} s sampled, ${(s.busyMs / 1000).toFixed(1)} s busy (${((s.busyMs / s.totalMs) * 100).toFixed(0)} %)` +
      (per ? `, ${s.tasks} tasks: ${((s.busyMs * 1000) / s.tasks!).toFixed(0)} µs busy per task (start-up included).` : '.'),
    '',
    table('top frames by self time', s.self),
    '',
    table('area (package) by self time', s.areas),
    '',
    table('project function by total time', s.projectTotal),
  ].join('\n');
}

if (process.argv[1] && fileURLToPath(import.meta.url) === path.resolve(process.argv[1])) {
  const args = process.argv.slice(2);
  const file = args.find((a, i) => !a.startsWith('--') && !['--top', '--tasks'].includes(args[i - 1]));
  const topIdx = args.indexOf('--top');
  const tasksIdx = args.indexOf('--tasks');
  if (!file) {
    process.stderr.write('usage: profile-summary.ts PROFILE.cpuprofile [--top N]\n');
    process.exit(2);
  }
  process.stdout.write(
    `${formatSummary(summariseProfile(file, topIdx >= 0 ? Number(args[topIdx + 1]) : 25, tasksIdx >= 0 ? Number(args[tasksIdx + 1]) : undefined))}\n`,
  );
}
